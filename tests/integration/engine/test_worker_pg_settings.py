"""A worker process's PostgreSQL connections scan the partial run indexes with plain index scans
(`worker.postgres_settings`), which mark the entries of finished row versions dead as they pass them:
the scans of running runs that every claim and group commit make stop revisiting finished runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crossdock.bootstrap import Container, build_container
from crossdock.core.db import make_engine
from crossdock.core.settings import Settings
from crossdock.engine.runtime import worker_container

MERCHANT = "mer_pgsettings"
RUNNING = (  # the claim's count of runs in flight, for one merchant
    f"SELECT merchant_id, count(*) FROM engine_runs WHERE status = 'running' AND merchant_id = '{MERCHANT}'"
    " GROUP BY merchant_id"
)


@pytest.fixture
def pg_url(backend: str, database_url: str) -> str:
    if backend != "postgres":
        pytest.skip("PostgreSQL settings")
    return database_url


async def _show(container: Container, setting: str = "enable_bitmapscan") -> str:
    try:
        async with container.db.engine.connect() as conn:
            return str((await conn.execute(text(f"SHOW {setting}"))).scalar_one())
    finally:
        await container.close()


async def test_a_worker_process_turns_bitmap_scans_off_and_other_processes_keep_the_servers_settings(
    pg_url: str,
) -> None:
    settings = Settings(database_url=pg_url)
    assert settings.worker.postgres_settings == {"enable_bitmapscan": "off"}
    server_default = await _show(build_container(settings))  # the API process and the CLI
    assert server_default == "on"  # PostgreSQL's default, which this database keeps
    assert await _show(worker_container(settings)) == "off"
    assert await _show(worker_container(Settings(database_url=pg_url, worker={"postgres_settings": {}}))) == "on"


async def test_each_process_names_its_connections_for_pg_stat_activity(pg_url: str) -> None:
    settings = Settings(database_url=pg_url)
    assert await _show(build_container(settings, role="api"), "application_name") == "crossdock-api"
    assert await _show(worker_container(settings), "application_name") == "crossdock-worker"
    assert await _show(build_container(settings), "application_name") == "crossdock-cli"
    # the name is visible to other sessions, which is what an operator reads
    container = worker_container(settings)
    try:
        async with container.db.engine.connect() as conn:
            mine = (
                await conn.execute(text("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"))
            ).scalar_one()
    finally:
        await container.close()
    assert mine == "crossdock-worker"
    # a deployment can name its workers itself (e.g. one name per region), keeping the other defaults
    named = Settings(
        database_url=pg_url, worker={"postgres_settings": {"enable_bitmapscan": "off", "application_name": "eu-worker"}}
    )
    assert await _show(worker_container(named), "application_name") == "eu-worker"
    assert await _show(worker_container(named)) == "off"


def test_the_setting_reads_a_json_object_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSDOCK_WORKER__POSTGRES_SETTINGS", '{"enable_bitmapscan": "on", "jit": "off"}')
    assert Settings().worker.postgres_settings == {"enable_bitmapscan": "on", "jit": "off"}
    monkeypatch.setenv("CROSSDOCK_WORKER__POSTGRES_SETTINGS", "{}")
    assert Settings().worker.postgres_settings == {}


@pytest.fixture
async def finished_runs(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """2,000 runs of one merchant that ran and finished (their `running` versions are dead), 3 running;
    each with a ~1 KB input, as an order's, so the runs span a few hundred pages."""
    engine = make_engine(pg_url)
    insert = text(
        "INSERT INTO engine_runs (id, flow_id, version_id, status, trigger, input, replays, available_at,"
        " lease_expires_at, lease_epoch, claims, generation, created_at, updated_at, merchant_id)"
        " SELECT 'run_pgs' || lpad(g::text, 6, '0'), 'flw', 'ver', 'running', CAST('{}' AS jsonb),"
        " jsonb_build_object('order', repeat('x', 900)), CAST('[]' AS jsonb), now(),"
        " now() + g * interval '1 millisecond', 1, 1, 0, now(), now(), :m FROM generate_series(1, 2003) AS g"
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(insert, {"m": MERCHANT})
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE engine_runs SET status = 'succeeded' WHERE merchant_id = :m AND id > 'run_pgs000003'"),
                {"m": MERCHANT},
            )
        yield engine
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM engine_runs WHERE merchant_id = :m"), {"m": MERCHANT})
        await engine.dispose()


async def _scan(conn: AsyncConnection) -> tuple[int, str, str | None]:
    """Shared buffers the running-runs query touches, its scan, and the index the scan used."""
    rows = (await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {RUNNING}"))).scalar_one()
    plan = (orjson.loads(rows) if isinstance(rows, str) else rows)[0]["Plan"]
    nodes: list[dict[str, Any]] = [plan]
    scans: list[tuple[str, str | None]] = []
    while nodes:
        node = nodes.pop()
        if "Scan" in node["Node Type"]:
            scans.append((node["Node Type"], node.get("Index Name")))
        nodes.extend(node.get("Plans", []))
    kind, index = scans[-1]  # the innermost scan: the bitmap index scan under a bitmap heap scan
    if kind == "Bitmap Index Scan":
        kind = "Bitmap Heap Scan"
    return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"]), kind, index


async def test_plain_index_scans_stop_revisiting_finished_runs_and_bitmap_scans_do_not(
    finished_runs: AsyncEngine,
) -> None:
    async with finished_runs.connect() as conn, finished_runs.connect() as other:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await other.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("SET enable_seqscan = off"))
        # As the planner may choose on a table it has no statistics for: a bitmap scan. It visits the
        # heap for each of the 2,000 dead entries, every time, and marks none of them.
        await conn.execute(text("SET enable_indexscan = off"))
        bitmap = [await _scan(conn) for _ in range(3)]
        assert {(kind, index) for _, kind, index in bitmap} == {("Bitmap Heap Scan", "ix_engine_runs_running")}
        assert bitmap[0][0] == bitmap[2][0] > 150, bitmap
        # A worker's connections: a plain index scan of the same partial index. It visits them too, and
        # marks each entry whose row version no snapshot can see any more; later scans skip those. The
        # marking waits until every older snapshot is gone (another backend starting up or a running
        # transaction holds the horizon back), so scan again until it took effect, for up to ~10 s.
        await conn.execute(text("RESET enable_indexscan"))
        await conn.execute(text("SET enable_bitmapscan = off"))
        plain = [await _scan(conn)]
        for _ in range(200):
            if plain[-1][0] * 4 < bitmap[0][0]:
                break
            await other.execute(text("SELECT pg_current_xact_id()"))  # moves the visibility horizon on
            await asyncio.sleep(0.05)
            plain.append(await _scan(conn))
    assert {(kind, index) for _, kind, index in plain} == {("Index Scan", "ix_engine_runs_running")}
    assert plain[0][0] > 150, plain
    assert plain[-1][0] * 4 < bitmap[0][0], (bitmap, plain[-3:])
