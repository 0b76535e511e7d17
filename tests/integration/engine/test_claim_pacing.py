"""Claim pacing: a trickle of work is claimed in batches; a backlog is claimed without pauses."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from crossdock.bootstrap import Container
from crossdock.engine.core import Engine
from crossdock.engine.models import Run

from .conftest import bulk_enqueue, publish, running_worker, wait_until

TRIVIAL = {"steps": [{"id": "a", "type": "map", "output": "=input"}]}


async def _succeeded(container: Container) -> int:
    async with container.db.reads.connect() as conn:
        return int((await conn.execute(select(func.count()).where(Run.status == "succeeded"))).scalar_one())


async def _trickle(container: Container, engine: Engine, merchant: str, pace: float) -> int:
    """Queue 60 runs one at a time, ~5 ms apart; return how many claims found work."""
    flow_id = await publish(container, engine, merchant, f"trickle{int(pace * 1000)}", TRIVIAL)
    before = await _succeeded(container)
    async with running_worker(engine, claim_pace_seconds=pace, poll_seconds=0.005) as worker:
        for _ in range(60):
            await bulk_enqueue(container, flow_id, 1)
            await asyncio.sleep(0.005)

        async def all_done() -> bool:
            return await _succeeded(container) - before == 60

        await wait_until(all_done, timeout=30, interval=0.01)
    return worker.claims


async def test_a_trickle_is_claimed_in_batches(container: Container, engine: Engine, merchant: str) -> None:
    eager = await _trickle(container, engine, merchant, pace=0.0)
    paced = await _trickle(container, engine, merchant, pace=0.1)
    # Eagerly, nearly every run gets its own claim; paced 0.1 s apart, the ~0.4 s of arrivals
    # take a handful of claims (the bound leaves room for a slow machine stretching the trickle).
    assert eager >= 25, eager
    assert paced <= 12, paced
    assert paced * 2 < eager, (paced, eager)


async def test_a_backlog_is_claimed_without_waiting_for_the_pace(
    container: Container, engine: Engine, merchant: str
) -> None:
    flow_id = await publish(container, engine, merchant, "backlog", TRIVIAL)
    await bulk_enqueue(container, flow_id, 300)
    started = time.monotonic()
    # A pace of 30 s: one paced wait while runs are still queued would blow the bound below.
    async with running_worker(engine, claim_pace_seconds=30.0, claim_batch=50, concurrency=64) as worker:

        async def all_done() -> bool:
            return await _succeeded(container) == 300

        await wait_until(all_done, timeout=20, interval=0.01)
    assert time.monotonic() - started < 8
    assert worker.claimed == 300
