"""A worker process's PostgreSQL connections scan the partial run indexes with plain index scans
(`worker.postgres_settings`), which mark the entries of finished row versions dead as they pass them:
the scans of running runs that every claim and group commit make stay as small as the runs in flight."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crossdock.bootstrap import build_container
from crossdock.core.db import make_engine
from crossdock.core.settings import Settings

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


async def _show(settings: Settings, **kwargs: Any) -> str:
    container = build_container(settings, **kwargs)
    try:
        async with container.db.engine.connect() as conn:
            return str((await conn.execute(text("SHOW enable_bitmapscan"))).scalar_one())
    finally:
        await container.close()


async def test_a_worker_process_turns_bitmap_scans_off_and_other_processes_keep_the_servers_settings(
    pg_url: str,
) -> None:
    settings = Settings(database_url=pg_url)
    assert settings.worker.postgres_settings == {"enable_bitmapscan": "off"}
    assert await _show(settings, server_settings=settings.worker.postgres_settings) == "off"
    assert await _show(settings) == "on"  # the API process and the CLI: the server's default


@pytest.fixture
async def finished_runs(pg_url: str) -> AsyncIterator[str]:
    """2,000 runs of one merchant that ran and finished (their `running` versions are dead), 3 running;
    each with a ~1 KB input, as an order's, so the runs span a few hundred pages."""
    engine = make_engine(pg_url)
    insert = text(
        "INSERT INTO engine_runs (id, flow_id, version_id, status, trigger, input, replays, available_at,"
        " lease_epoch, claims, generation, created_at, updated_at, merchant_id)"
        " SELECT 'run_pgs' || lpad(g::text, 6, '0'), 'flw', 'ver', 'running', CAST('{}' AS jsonb),"
        " jsonb_build_object('order', repeat('x', 900)),"
        " CAST('[]' AS jsonb), now(), 1, 1, 0, now(), now(), :m FROM generate_series(1, 2003) AS g"
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(insert, {"m": MERCHANT})
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE engine_runs SET status = 'succeeded' WHERE merchant_id = :m AND id > 'run_pgs000003'"),
                {"m": MERCHANT},
            )
        yield pg_url
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM engine_runs WHERE merchant_id = :m"), {"m": MERCHANT})
        await engine.dispose()


async def _buffers(conn: AsyncConnection) -> tuple[int, str]:
    """Shared buffers the running-runs query touches, and the scan it used."""
    rows = (await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {RUNNING}"))).scalar_one()
    plan = (orjson.loads(rows) if isinstance(rows, str) else rows)[0]["Plan"]
    nodes = [plan]
    kinds = []
    while nodes:
        node = nodes.pop()
        kinds.append(node["Node Type"])
        nodes.extend(node.get("Plans", []))
    scan = next(k for k in kinds if "Scan" in k)
    return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"]), scan


async def test_plain_index_scans_stop_revisiting_finished_runs_and_bitmap_scans_do_not(finished_runs: str) -> None:
    engine = make_engine(finished_runs)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            # As the planner may choose on a table it has no statistics for: a bitmap scan.
            await conn.execute(text("SET enable_seqscan = off"))
            await conn.execute(text("SET enable_indexscan = off"))
            bitmap = [await _buffers(conn) for _ in range(3)]
            # A worker's connections: no bitmap scans, so a plain index scan of the partial index.
            await conn.execute(text("RESET enable_indexscan"))
            await conn.execute(text("SET enable_bitmapscan = off"))
            plain = [await _buffers(conn) for _ in range(3)]
    finally:
        await engine.dispose()
    assert {scan for _, scan in bitmap} == {"Bitmap Heap Scan"}
    assert {scan for _, scan in plain} == {"Index Scan"}
    # The bitmap scan visits the heap for every dead entry, every time.
    assert bitmap[2][0] == bitmap[0][0] > 100
    # The first plain scan visits them too, and marks the 2,000 dead entries as it goes; later scans skip
    # them (here ~290 buffers, then ~36: the index leaves that still hold the marked entries, and the
    # live three's pages).
    assert plain[0][0] > 100
    assert plain[2][0] == plain[1][0] and plain[2][0] * 5 < plain[0][0], (bitmap, plain)
    assert plain[2][0] * 5 < bitmap[2][0], (bitmap, plain)
