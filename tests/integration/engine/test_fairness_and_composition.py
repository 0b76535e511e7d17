"""Per-merchant fairness, sub-flows, flow events, cron and polling triggers, sub-flow cycles."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from crossdock.bootstrap import Container
from crossdock.core.clock import utcnow
from crossdock.engine import service
from crossdock.engine.core import Engine
from crossdock.engine.definitions import InvalidFlow
from crossdock.engine.models import Run, Trigger
from crossdock.engine.scheduler import Scheduler

from .conftest import (
    SYSTEM,
    bulk_enqueue,
    get_run,
    new_merchant,
    publish,
    run_to_rest,
    running_worker,
    start,
    wait_until,
)

TRIVIAL = {"steps": [{"id": "a", "type": "map", "output": "=input"}]}


@pytest.mark.slow
async def test_flood_from_one_merchant_does_not_starve_another(container: Container, engine: Engine) -> None:
    a = await new_merchant(container, "A")
    b = await new_merchant(container, "B")
    flow_a = await publish(container, engine, a, "fa", TRIVIAL)
    flow_b = await publish(container, engine, b, "fb", TRIVIAL)
    await bulk_enqueue(container, flow_a, 2000)
    b_runs = await bulk_enqueue(container, flow_b, 20)

    async def done(merchant: str) -> int:
        async with container.db.reads.connect() as conn:
            q = select(func.count()).select_from(Run).where(Run.merchant_id == merchant, Run.status == "succeeded")
            return int((await conn.execute(q)).scalar() or 0)

    async with running_worker(engine, concurrency=64, claim_batch=100, merchant_concurrency=16):

        async def b_finished() -> bool:
            return await done(b) == len(b_runs)

        await wait_until(b_finished, timeout=60, interval=0.005)
    # Judge by the runs' own finish times, not by when this (possibly CPU-starved) observer looked.
    async with container.db.engine.connect() as conn:
        b_last = (await conn.execute(select(func.max(Run.finished_at)).where(Run.merchant_id == b))).scalar()
        a_done = (
            await conn.execute(
                select(func.count()).where(Run.merchant_id == a, Run.status == "succeeded", Run.finished_at <= b_last)
            )
        ).scalar()
    assert a_done is not None and a_done < 1000, f"A had {a_done} of 2000 done when B finished"


async def test_subflow_and_flow_events(container: Container, engine: Engine, merchant: str) -> None:
    await publish(
        container,
        engine,
        merchant,
        "child",
        {"steps": [{"id": "double", "type": "map", "output": "=multiply(input.n, `2`)"}]},
    )
    await publish(
        container,
        engine,
        merchant,
        "listener",
        {
            "triggers": [{"type": "event", "event": "order.imported"}],
            "steps": [{"id": "got", "type": "map", "output": "=input"}],
        },
    )
    parent = await publish(
        container,
        engine,
        merchant,
        "parent",
        {
            "steps": [
                {"id": "call", "type": "subflow", "flow": "child", "input": {"n": "=input.n"}},
                {"id": "tell", "type": "emit", "event": "order.imported", "payload": {"doubled": "=steps.call"}},
            ]
        },
    )
    run_id = await start(container, parent, {"n": 21})

    final = await run_to_rest(container, engine)

    assert sorted(final.values()) == ["succeeded", "succeeded", "succeeded"]
    run = await get_run(container, run_id)
    assert run.output["event"] == "order.imported"
    [listener_run] = run.output["runs"]
    assert (await get_run(container, listener_run)).output == {"doubled": 42}


async def test_subflow_cycle_is_rejected_naming_the_path(container: Container, engine: Engine, merchant: str) -> None:
    await publish(container, engine, merchant, "b", {"steps": [{"id": "x", "type": "map", "output": 1}]})
    await publish(container, engine, merchant, "a", {"steps": [{"id": "callb", "type": "subflow", "flow": "b"}]})
    async with container.db.session(SYSTEM.scope) as s:
        b = await s.scalar(select(Trigger).limit(0))  # keep the session warm
        flows, _ = await service.list_flows(s, limit=10, cursor=None)
        flow_b = next(f for f in flows if f.key == "b")
        v2 = await service.create_version(
            s,
            SYSTEM,
            engine,
            flow_b.id,
            {"steps": [{"id": "pre", "type": "map", "output": 1}, {"id": "calla", "type": "subflow", "flow": "a"}]},
        )
    async with container.db.session(SYSTEM.scope) as s:
        with pytest.raises(InvalidFlow) as err:
            await service.publish_version(s, SYSTEM, engine, flow_b.id, v2.number)
    assert err.value.errors == [{"path": "steps[1].flow", "problem": "sub-flows form a cycle: b → a → b"}]
    assert b is None


async def test_cron_fires_once_per_due_time_with_time_zone(container: Container, engine: Engine, merchant: str) -> None:
    flow_id = await publish(
        container,
        engine,
        merchant,
        "nightly",
        {
            "triggers": [{"type": "cron", "cron": "0 2 * * *", "timezone": "Europe/Berlin", "input": {"k": 1}}],
            "steps": [{"id": "a", "type": "map", "output": "=input.k"}],
        },
    )
    async with container.db.engine.connect() as conn:
        nxt = (await conn.execute(select(Trigger.next_fire_at).where(Trigger.flow_id == flow_id))).scalar_one()
    assert nxt.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin")).hour == 2
    async with container.db.engine.begin() as conn:
        await conn.execute(update(Trigger).values(next_fire_at=utcnow() - timedelta(seconds=1)))

    first = await Scheduler(engine).fire_cron()
    second = await Scheduler(engine).fire_cron()

    assert (first, second) == (1, 0)
    final = await run_to_rest(container, engine)
    assert list(final.values()) == ["succeeded"]


async def test_polling_trigger_keeps_a_durable_cursor(container: Container, engine: Engine, merchant: str) -> None:
    seen_cursors: list[Any] = []

    async def poll(config: dict[str, Any], cursor: Any) -> tuple[list[tuple[str, Any]], Any]:
        seen_cursors.append(cursor)
        start_at = cursor or 0
        return [(str(i), {"n": i}) for i in range(start_at, start_at + config["page"])], start_at + config["page"]

    engine.register_poller("test.counter", poll)
    await publish(
        container,
        engine,
        merchant,
        "poller",
        {
            "triggers": [{"type": "poll", "poller": "test.counter", "every_s": 0.1, "config": {"page": 3}}],
            "steps": [{"id": "a", "type": "map", "output": "=input.n"}],
        },
    )
    sched = Scheduler(engine)
    assert await sched.run_polls() == 3
    await asyncio.sleep(0.11)
    assert await sched.run_polls() == 3
    assert seen_cursors == [None, 3]
    final = await run_to_rest(container, engine)
    assert len(final) == 6 and set(final.values()) == {"succeeded"}
