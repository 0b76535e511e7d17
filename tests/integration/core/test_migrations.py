"""Migrations 0006 (engine_events dropped), 0007 (partial run indexes), 0008, 0009 and 0010 up and
down, on both databases, with a run stored before the upgrade surviving it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from crossdock.core.db import make_engine
from crossdock.core.migrate import downgrade, upgrade
from tests.conftest import PG_ADMIN_URL, _asyncpg_url, _pg_admin

PARTIAL = {"ix_engine_runs_queued", "ix_engine_runs_waiting", "ix_engine_runs_running", "ix_engine_runs_attention"}
FULL = {"ix_engine_runs_claim", "ix_engine_runs_wake", "ix_engine_runs_lease", "ix_engine_runs_merchant_status"}


@pytest.fixture
async def scratch(backend: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An empty database of its own (the session's database is already at head)."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}")
        yield engine
        await engine.dispose()
        return
    name = f"crossdock_mig_{uuid.uuid4().hex[:8]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    engine = make_engine(_asyncpg_url(PG_ADMIN_URL, name))
    try:
        yield engine
    finally:
        await engine.dispose()
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def schema(engine: AsyncEngine) -> tuple[set[str], set[str]]:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda c: (
                set(inspect(c).get_table_names()),
                {ix["name"] for ix in inspect(c).get_indexes("engine_runs") if ix["name"]},
            )
        )


async def test_events_table_and_run_indexes_up_and_down(scratch: AsyncEngine) -> None:
    await upgrade(scratch, "0005")
    async with scratch.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO engine_runs (id, flow_id, version_id, status, trigger, input, available_at, "
                "lease_epoch, claims, generation, replays, created_at, updated_at) VALUES ('run_1', 'flw_1', "
                "'ver_1', 'queued', '{}', '{\"id\": 1}', CURRENT_TIMESTAMP, 0, 0, 0, '[]', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            )
        )
    tables, indexes = await schema(scratch)
    assert "engine_events" in tables and FULL <= indexes

    await upgrade(scratch)
    tables, indexes = await schema(scratch)
    assert "engine_events" not in tables
    assert PARTIAL <= indexes and not (FULL & indexes)
    async with scratch.connect() as conn:
        stored = (await conn.execute(text("SELECT id, status FROM engine_runs"))).all()
        # the queued run is found through the predicate the partial index is built for
        queued = (await conn.execute(text("SELECT id FROM engine_runs WHERE status = 'queued'"))).scalars().all()
    assert [tuple(r) for r in stored] == [("run_1", "queued")] and queued == ["run_1"]

    await downgrade(scratch, "0005")
    tables, indexes = await schema(scratch)
    assert "engine_events" in tables and FULL <= indexes and not (PARTIAL & indexes)

    await upgrade(scratch)
    assert PARTIAL <= (await schema(scratch))[1]


async def _indexes(engine: AsyncEngine, table: str) -> dict[str, dict[str, object]]:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: {ix["name"]: ix for ix in inspect(c).get_indexes(table) if ix["name"]})


async def _compression(engine: AsyncEngine) -> dict[tuple[str, str], str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT attrelid::regclass::text, attname, attcompression::text FROM pg_attribute "
                "WHERE attrelid IN ('engine_runs'::regclass, 'engine_journal'::regclass, 'engine_effects'::regclass) "
                "AND attnum > 0 AND NOT attisdropped"
            )
        )
        return {(t, c): m for t, c, m in rows}


async def test_lean_run_writes_up_and_down(scratch: AsyncEngine, backend: str) -> None:
    """0008: tenant indexes off the journal and the ledger, a partial parent index, lz4 on PostgreSQL."""
    tenant = {"ix_engine_journal_partner_id", "ix_engine_journal_merchant_id"}
    await upgrade(scratch, "0007")
    assert tenant <= set(await _indexes(scratch, "engine_journal"))

    await upgrade(scratch)
    assert not (tenant & set(await _indexes(scratch, "engine_journal")))
    assert not {"ix_engine_runs_created_at", "ix_engine_runs_partner_id"} & set(await _indexes(scratch, "engine_runs"))
    assert not {"ix_engine_effects_partner_id", "ix_engine_effects_merchant_id"} & set(
        await _indexes(scratch, "engine_effects")
    )
    async with scratch.connect() as conn:
        sql = await conn.run_sync(
            lambda c: c.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_engine_runs_parent_run_id'"
                if backend == "postgres"
                else "SELECT sql FROM sqlite_master WHERE name = 'ix_engine_runs_parent_run_id'"
            ).scalar_one()
        )
    assert "parent_run_id IS NOT NULL" in sql
    if backend == "postgres":
        methods = await _compression(scratch)
        assert methods[("engine_runs", "input")] == "l" and methods[("engine_journal", "output")] == "l"
        assert methods[("engine_effects", "result")] == "l" and methods[("engine_runs", "id")] == ""

    await downgrade(scratch, "0007")
    assert tenant <= set(await _indexes(scratch, "engine_journal"))
    assert {"ix_engine_runs_created_at", "ix_engine_runs_partner_id"} <= set(await _indexes(scratch, "engine_runs"))
    if backend == "postgres":
        assert (await _compression(scratch))[("engine_runs", "input")] == "p"


async def test_run_input_as_json_text_up_and_down(scratch: AsyncEngine, backend: str) -> None:
    """0009: a run's input and the journal's output and error become `json` on PostgreSQL (lz4; the
    input kept out of line), stored inputs survive the rewrite both ways; nothing changes on SQLite."""
    document = {"id": 7, "note": "ünïcode", "lines": [{"sku": "A-1", "qty": 2}], "none": None}
    await upgrade(scratch, "0008")
    async with scratch.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO engine_runs (id, flow_id, version_id, status, trigger, input, available_at, "
                "lease_epoch, claims, generation, replays, created_at, updated_at) VALUES ('run_1', 'flw_1', "
                "'ver_1', 'queued', '{}', :doc, CURRENT_TIMESTAMP, 0, 0, 0, '[]', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            ),
            {"doc": orjson.dumps(document).decode()},
        )

    async def state() -> tuple[object, str | None, list[str] | None]:
        await scratch.dispose()  # pooled connections hold plans of the column's previous type
        async with scratch.connect() as conn:
            stored = (await conn.execute(text("SELECT input FROM engine_runs"))).scalar_one()
            if backend != "postgres":
                return orjson.loads(stored), None, None
            kinds = (
                await conn.execute(
                    text(
                        "SELECT DISTINCT data_type FROM information_schema.columns WHERE (table_name, column_name) "
                        "IN (('engine_runs', 'input'), ('engine_journal', 'output'), ('engine_journal', 'error'))"
                    )
                )
            ).scalars()
            kind = ",".join(sorted(kinds))  # one type for all three
            options = (
                await conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'engine_runs'"))
            ).scalar()
        return stored, kind, options

    await upgrade(scratch)
    value, kind, options = await state()
    assert value == document
    if backend == "postgres":
        assert (kind, options) == ("json", ["toast_tuple_target=1024"])
        methods = await _compression(scratch)
        assert methods[("engine_runs", "input")] == methods[("engine_journal", "output")] == "l"

    await downgrade(scratch, "0008")
    value, kind, options = await state()
    assert value == document
    if backend == "postgres":
        assert (kind, options) == ("jsonb", None)
        assert (await _compression(scratch))[("engine_runs", "input")] == "l"


async def test_effect_ledger_without_run_index_up_and_down(scratch: AsyncEngine) -> None:
    """0010: the ledger's unused `run_id` index goes; a recorded effect is still found by its key."""
    await upgrade(scratch, "0009")
    assert "ix_engine_effects_run_id" in await _indexes(scratch, "engine_effects")
    async with scratch.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO engine_effects (idempotency_key, run_id, step_path, action, result, created_at) "
                "VALUES ('run_1:erp:5', 'run_1', 'erp', 'http.request', '{\"status\": 201}', CURRENT_TIMESTAMP)"
            )
        )

    await upgrade(scratch)
    indexes = await _indexes(scratch, "engine_effects")
    assert "ix_engine_effects_run_id" not in indexes
    async with scratch.connect() as conn:
        found = (
            await conn.execute(text("SELECT run_id FROM engine_effects WHERE idempotency_key = 'run_1:erp:5'"))
        ).scalar_one()
    assert found == "run_1"

    await downgrade(scratch, "0009")
    assert "ix_engine_effects_run_id" in await _indexes(scratch, "engine_effects")
