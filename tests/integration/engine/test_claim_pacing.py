"""Claim pacing: a trickle of work is claimed in batches; a backlog is claimed without pauses."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import event, func, select

from crossdock.bootstrap import Container
from crossdock.engine.core import Engine
from crossdock.engine.models import MerchantQueue, Run
from crossdock.engine.worker import Worker

from .conftest import bulk_enqueue, publish, running_worker, wait_until

TRIVIAL = {"steps": [{"id": "a", "type": "map", "output": "=input"}]}


async def _succeeded(container: Container) -> int:
    async with container.db.reads.connect() as conn:
        return int((await conn.execute(select(func.count()).where(Run.status == "succeeded"))).scalar_one())


async def _trickle(container: Container, engine: Engine, merchant: str, pace: float) -> tuple[int, float]:
    """Queue 60 runs one at a time, ~5 ms apart; return how many claims found work, and how long
    the arrivals took."""
    flow_id = await publish(container, engine, merchant, f"trickle{int(pace * 1000)}", TRIVIAL)
    before = await _succeeded(container)
    async with running_worker(engine, claim_pace_seconds=pace, poll_seconds=0.005) as worker:
        started = time.monotonic()
        for _ in range(60):
            await bulk_enqueue(container, flow_id, 1)
            await asyncio.sleep(0.005)
        span = time.monotonic() - started

        async def all_done() -> bool:
            return await _succeeded(container) - before == 60

        await wait_until(all_done, timeout=30, interval=0.01)
    return worker.claims, span


async def test_a_trickle_is_claimed_in_batches(container: Container, engine: Engine, merchant: str) -> None:
    eager, _ = await _trickle(container, engine, merchant, pace=0.0)
    paced, span = await _trickle(container, engine, merchant, pace=0.1)
    # Paced 0.1 s apart, the arrivals take about one claim per 0.1 s (plus the first and the last);
    # eagerly, nearly every run gets a claim of its own.
    assert paced <= span / 0.1 + 3, (paced, span)
    assert paced * 2 < eager, (paced, eager)


async def test_a_backlog_is_claimed_without_waiting_for_the_pace(
    container: Container, engine: Engine, merchant: str
) -> None:
    flow_id = await publish(container, engine, merchant, "backlog", TRIVIAL)
    await bulk_enqueue(container, flow_id, 300)
    # Batches of 10 with 256 slots (and no merchant cap in the way): after a full claim fewer than
    # half the slots are busy, so only the rule "a claim that got all it asked for is followed at
    # once" keeps the worker claiming. A single paced wait (30 s) would outlast the 20 s allowed.
    async with running_worker(
        engine, claim_pace_seconds=30.0, claim_batch=10, concurrency=256, merchant_concurrency=512
    ) as worker:

        async def all_done() -> bool:
            return await _succeeded(container) == 300

        await wait_until(all_done, timeout=20, interval=0.01)
    assert worker.claimed == 300 and worker.claims >= 30


async def test_an_idle_worker_polls_with_one_cheap_read_and_still_picks_up_new_work(
    container: Container, engine: Engine, merchant: str
) -> None:
    flow_id = await publish(container, engine, merchant, "idle", TRIVIAL)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    # The probe is a pure read: on a SQLite file it goes through the read engine (core.db).
    engines = {container.db.engine.sync_engine, container.db.read_engine.sync_engine}
    for sync_engine in engines:
        event.listen(sync_engine, "before_cursor_execute", seen)
    try:
        async with running_worker(engine, poll_seconds=0.01) as worker:
            await asyncio.sleep(0.4)  # ~40 polls of an empty queue
            idle = list(statements)
            # A claim: its statement on SQLite; on PostgreSQL its advisory lock (the claim statement
            # itself runs through asyncpg directly, `core.rawpg`, which SQLAlchemy's events do not see).
            claim_start = "SELECT pg_advisory_xact_lock" if container.db.dialect == "postgresql" else "WITH running AS"
            claims_while_idle = [s for s in idle if s.startswith(claim_start)]
            probes = [s for s in idle if s.startswith("SELECT engine_runs.id FROM engine_runs")]
            # One claim found the queue empty; every later poll only asked whether anything is due.
            assert len(claims_while_idle) == 1, claims_while_idle
            assert len(probes) >= 10
            assert not any(s.startswith("BEGIN IMMEDIATE") for s in idle[idle.index(probes[0]) :])

            before = await _succeeded(container)
            await bulk_enqueue(container, flow_id, 3)

            async def picked_up() -> bool:
                return await _succeeded(container) - before == 3

            await wait_until(picked_up, timeout=5, interval=0.01)
            assert worker.claimed == 3
    finally:
        for sync_engine in engines:
            event.remove(sync_engine, "before_cursor_execute", seen)


async def test_a_claim_records_when_it_served_the_merchant(container: Container, engine: Engine, merchant: str) -> None:
    flow_id = await publish(container, engine, merchant, "served", TRIVIAL)
    await bulk_enqueue(container, flow_id, 2)
    worker = Worker(engine)
    started = time.time()
    runs = await worker.claim(10)
    assert len(runs) == 2 and {r.merchant_id for r in runs} == {merchant}
    async with container.db.reads.connect() as conn:
        served = (
            await conn.execute(select(MerchantQueue.last_served_at).where(MerchantQueue.merchant_id == merchant))
        ).scalar_one()
    assert started - 5 <= served <= time.time() + 1
    assert await worker.claim(10) == []  # both are running now; nothing else is due
