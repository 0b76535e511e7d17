"""PostgreSQL's one-statement group commit writes exactly what the transaction of statements writes,
and fences the same way."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.core.clock import utcnow
from crossdock.engine.core import Engine
from crossdock.engine.journal import EFFECTS, JOURNAL, RUNS, CommitOp, PgBatchStatement, apply_ops
from crossdock.engine.steps import ClaimedRun
from crossdock.engine.worker import Worker

from .conftest import publish, start


@pytest.fixture(autouse=True)
def postgres_only(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("the one-statement commit is PostgreSQL's")


def journal_row(run: ClaimedRun, path: str, output: Any, error: Any = None) -> dict[str, Any]:
    now = utcnow()
    return {
        "run_id": run.id,
        "step_path": path,
        "step_type": "map",
        "attempt": 1,
        "status": "succeeded" if error is None else "failed",
        "output": output,
        "error": error,
        "started_at": now - timedelta(milliseconds=3),
        "finished_at": now,
        "duration_ms": 3.25,
        "lease_epoch": run.lease_epoch,
        "superseded": False,
        "partner_id": run.partner_id,
        "merchant_id": run.merchant_id,
    }


def effect_row(run: ClaimedRun, key: str, result: Any) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "run_id": run.id,
        "step_path": "post",
        "action": "http.request",
        "result": result,
        "created_at": utcnow(),
        "partner_id": run.partner_id,
        "merchant_id": run.merchant_id,
    }


async def claim(container: Container, engine: Engine, merchant: str, n: int) -> list[ClaimedRun]:
    flow_id = await publish(container, engine, merchant, "batch", {"steps": [{"id": "a", "type": "map", "output": 1}]})
    for i in range(n):
        await start(container, flow_id, {"i": i})
    runs = await Worker(engine, lease_seconds=30).claim(n)
    assert len(runs) == n
    return sorted(runs, key=lambda r: r.id)


def ops_for(runs: list[ClaimedRun], tag: str) -> list[CommitOp]:
    """Three runs: one goes on (lease extended), one succeeds with an effect, one fails terminally."""
    going, done, failed = runs
    end = utcnow()
    return [
        CommitOp(going.id, going.lease_epoch, journal=[journal_row(going, "a", [1, "x"])]),
        CommitOp(
            done.id,
            done.lease_epoch,
            journal=[journal_row(done, "a", {"n": Decimal("1.50")}), journal_row(done, "post", None)],
            effects=[effect_row(done, f"{tag}:{done.id}", {"status": 201, "body": {"ok": True}})],
            run_update={
                "status": "succeeded",
                "output": {"total": 2},
                "error": None,
                "finished_at": end,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        ),
        CommitOp(
            failed.id,
            failed.lease_epoch,
            journal=[journal_row(failed, "a", None, error={"type": "StepFailed", "message": "no"})],
            run_update={
                "status": "needs_attention",
                "error": {"message": "no"},
                "finished_at": end,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        ),
    ]


async def snapshot(container: Container, ids: list[str]) -> tuple[list[Any], list[Any], list[Any]]:
    skip = {"seq", "run_id", "started_at", "finished_at"}
    async with container.db.engine.connect() as conn:
        runs = (
            await conn.execute(
                select(
                    RUNS.c.status, RUNS.c.output, RUNS.c.error, RUNS.c.lease_owner, RUNS.c.lease_expires_at.is_(None)
                )
                .where(RUNS.c.id.in_(ids))
                .order_by(RUNS.c.id)
            )
        ).all()
        journal = (
            await conn.execute(
                select(*[c for c in JOURNAL.c if c.name not in skip])
                .where(JOURNAL.c.run_id.in_(ids))
                .order_by(JOURNAL.c.seq)
            )
        ).all()
        effects = (
            await conn.execute(select(EFFECTS.c.result, EFFECTS.c.action).where(EFFECTS.c.run_id.in_(ids)))
        ).all()
    return [tuple(r) for r in runs], [tuple(r) for r in journal], [tuple(r) for r in effects]


async def test_one_statement_writes_what_the_transaction_writes(
    container: Container, engine: Engine, merchant: str
) -> None:
    runs = await claim(container, engine, merchant, 6)
    by_statements, by_one = runs[:3], runs[3:]

    async with container.db.engine.begin() as conn:
        held_a = await apply_ops(conn, "postgresql", ops_for(by_statements, "a"), 30)
    ops = ops_for(by_one, "b")
    assert all(op.plain for op in ops)
    async with container.db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        shape = PgBatchStatement.shape(ops)
        assert shape is not None
        held_b = await PgBatchStatement(container.db.engine.dialect).execute(conn, ops, 30, shape)

    assert held_a == {r.id for r in by_statements} and held_b == {r.id for r in by_one}
    a = await snapshot(container, [r.id for r in by_statements])
    b = await snapshot(container, [r.id for r in by_one])
    assert a == b
    runs_a, journal_a, effects_a = a
    assert [r[0] for r in runs_a] == ["running", "succeeded", "needs_attention"]
    assert runs_a[0][3] is not None and runs_a[1][3] is None  # the going-on run keeps its lease
    assert len(journal_a) == 4 and effects_a == [({"status": 201, "body": {"ok": True}}, "http.request")]
    assert {"n": "1.50"} in journal_a[1]  # a non-JSON value (Decimal) is stored as its text, both ways


async def test_stale_epochs_write_nothing(container: Container, engine: Engine, merchant: str) -> None:
    runs = await claim(container, engine, merchant, 3)
    ops = ops_for(runs, "c")
    ops[1].epoch += 1  # another worker claimed this run since
    async with container.db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        held = await PgBatchStatement(container.db.engine.dialect).execute(
            conn, ops, 30, PgBatchStatement.shape(ops) or ((), ())
        )

    assert held == {runs[0].id, runs[2].id}
    statuses, journal, effects = await snapshot(container, [runs[1].id])
    assert (statuses[0][0], journal, effects) == ("running", [], [])


async def test_ops_with_waits_extra_columns_or_mixed_rows_take_the_transaction(container: Container) -> None:
    assert not CommitOp("r", 1, waits=[{"id": "w"}]).plain
    assert not CommitOp("r", 1, run_update={"generation": 2}).plain
    assert CommitOp("r", 1, run_update={"status": "queued", "available_at": utcnow(), "wake_at": None}).plain
    plain = [CommitOp("r1", 1, journal=[{"run_id": "r1", "status": "ok"}]), CommitOp("r2", 1)]
    assert PgBatchStatement.shape(plain) == (("run_id", "status"), ())
    mixed = [*plain, CommitOp("r3", 1, journal=[{"run_id": "r3", "status": "ok", "error": None}])]
    assert PgBatchStatement.shape(mixed) is None  # rows with other keys: the transaction writes them
    assert PgBatchStatement.shape([*plain, CommitOp("r4", 1, new_runs=[{"id": "c"}])]) is None


async def test_lease_sweeps_skip_runs_a_commit_holds(container: Container, engine: Engine, merchant: str) -> None:
    """The heartbeat and the reaper never wait on rows a group commit has locked: waiting, in another
    order than the commit's, is how they deadlocked with it (PostgreSQL's log showed it under load)."""
    import asyncio

    from sqlalchemy import update

    from crossdock.engine.reaper import reap_expired_leases

    worker = Worker(engine, lease_seconds=30)
    flow_id = await publish(container, engine, merchant, "sweep", {"steps": [{"id": "a", "type": "map", "output": 1}]})
    for i in range(3):
        await start(container, flow_id, {"i": i})
    held, *free = sorted(await worker.claim(3), key=lambda r: r.id)
    async with container.db.engine.connect() as lock_conn:
        await lock_conn.begin()
        await lock_conn.execute(select(RUNS.c.id).where(RUNS.c.id == held.id).with_for_update())
        # neither sweep waits for the lock (a wait would hit the timeout)
        assert await asyncio.wait_for(worker.renew_leases(), 5) == 2
        async with container.db.engine.begin() as conn:  # every lease expires
            expire = update(RUNS).values(lease_expires_at=RUNS.c.started_at)
            await conn.execute(expire.where(RUNS.c.id.in_([r.id for r in free])))
        await lock_conn.execute(expire.where(RUNS.c.id == held.id))
        assert await asyncio.wait_for(reap_expired_leases(container.db), 5) == 2
        await lock_conn.commit()
    assert await reap_expired_leases(container.db) == 1  # once the lock is gone, its expired lease is reaped
    async with container.db.engine.connect() as conn:
        statuses = dict((await conn.execute(select(RUNS.c.id, RUNS.c.status))).all())
    assert statuses[held.id] == "queued" and all(statuses[r.id] == "queued" for r in free)


async def test_intake_json_insert_stores_what_executemany_stores(container: Container, engine: Engine) -> None:
    """The intake's batch as one JSON document (PostgreSQL) stores the same run rows as executemany,
    and reports duplicates the same way."""
    from crossdock.engine.service import new_run_row

    batcher = engine.intake
    payload = {"id": 7, "total": Decimal("9.99"), "tags": ["a", None], "note": None, "nested": {"x": [1, 2.5]}}
    trigger = {"kind": "webhook", "endpoint_id": "trg_1", "event_id": "evt_1", "headers": {"x-a": "1"}}

    def rows(tag: str) -> dict[str, dict[str, Any]]:
        return {
            f"{tag}:{i}": new_run_row("flw_1", "ver_1", None, None, {**payload, "i": i}, trigger, f"{tag}:{i}")
            for i in range(3)
        }

    json_rows, many_rows = rows("json"), rows("many")
    async with container.db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        new_a, _ = await batcher._insert(conn, json_rows)
        await conn.execute(batcher._insert_stmt, list(many_rows.values()))
        again, existing = await batcher._insert(conn, {**json_rows, **rows("json2")})
    assert new_a == set(json_rows) and again == set(rows("json2"))
    assert existing == {k: (r["id"], "evt_1") for k, r in json_rows.items()}  # duplicates: the stored run

    skip = {"id", "dedup_key", "created_at", "updated_at", "available_at"}
    async with container.db.engine.connect() as conn:
        stored = {r.dedup_key: r._mapping for r in await conn.execute(select(RUNS))}
    for i in range(3):
        a, b = stored[f"json:{i}"], stored[f"many:{i}"]
        assert {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}
    first = stored["json:0"]
    assert (first["status"], first["input"], first["trigger"]) == (
        "queued",
        {**payload, "total": "9.99", "i": 0},
        trigger,
    )
