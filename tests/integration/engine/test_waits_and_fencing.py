"""Durable timers and approvals survive restarts; resolving twice acts once; fencing stops a stale worker."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, update

from crossdock.bootstrap import Container, build_container
from crossdock.core.errors import Conflict
from crossdock.engine import service
from crossdock.engine.core import Engine, engine_of
from crossdock.engine.journal import JOURNAL, RUNS, CommitOp, LeaseLost
from crossdock.engine.models import Wait
from crossdock.engine.reaper import reap_expired_leases
from crossdock.engine.scheduler import Scheduler
from crossdock.engine.worker import Worker

from .conftest import SYSTEM, get_run, publish, run_to_rest, start, statuses, wait_until

APPROVAL_FLOW = {
    "steps": [
        {"id": "ask", "type": "approval", "prompt": "Discount {{input.pct}}% ok?", "timeout_s": 3600},
        {"id": "after", "type": "map", "output": "=steps.ask.decision"},
    ]
}


async def test_timer_survives_restart_of_every_process(container: Container, engine: Engine, merchant: str) -> None:
    flow_id = await publish(
        container,
        engine,
        merchant,
        "timer",
        {"steps": [{"id": "nap", "type": "timer", "seconds": 0.3}, {"id": "done", "type": "map", "output": "woke"}]},
    )
    run_id = await start(container, flow_id, {})
    assert await run_to_rest(container, engine) == {run_id: "waiting"}
    await engine.close()
    await container.close()  # every process is gone; only the database remains

    fresh = build_container(container.settings)
    try:
        fresh_engine = engine_of(fresh)
        await asyncio.sleep(0.35)
        final = await run_to_rest(fresh, fresh_engine, extra_scheduler=True)
        assert final == {run_id: "succeeded"}
        assert (await get_run(fresh, run_id)).output == "woke"
    finally:
        await fresh_engine.close()
        await fresh.close()


async def test_approval_survives_restart_and_resolving_twice_acts_once(
    container: Container, engine: Engine, merchant: str
) -> None:
    flow_id = await publish(container, engine, merchant, "approve", APPROVAL_FLOW)
    run_id = await start(container, flow_id, {"pct": 40})
    assert await run_to_rest(container, engine) == {run_id: "waiting"}
    await engine.close()
    await container.close()

    fresh = build_container(container.settings)
    fresh_engine = engine_of(fresh)
    try:
        async with fresh.db.session(SYSTEM.scope) as s:
            waits, _ = await service.list_waits(s, limit=10, cursor=None, status="open")
        assert [(w.kind, w.prompt) for w in waits] == [("approval", "Discount 40% ok?")]
        decision = {"decision": "approved", "by": "usr_1"}
        async with fresh.db.session(SYSTEM.scope) as s:
            _w, first = await service.resolve_wait(s, SYSTEM, waits[0].id, resolution=decision, idempotency_key="k1")
        async with fresh.db.session(SYSTEM.scope) as s:
            _w, second = await service.resolve_wait(s, SYSTEM, waits[0].id, resolution=decision, idempotency_key="k1")
        assert (first, second) == (True, False)
        async with fresh.db.session(SYSTEM.scope) as s:
            with pytest.raises(Conflict):
                await service.resolve_wait(s, SYSTEM, waits[0].id, resolution=decision, idempotency_key="other")

        final = await run_to_rest(fresh, fresh_engine)

        assert final == {run_id: "succeeded"}
        assert (await get_run(fresh, run_id)).output == "approved"
        async with fresh.db.session(SYSTEM.scope) as s:
            journal = await service.get_journal(s, run_id)
        assert [(j.step_path, j.attempt) for j in journal] == [("ask", 1), ("after", 1)]
    finally:
        await fresh_engine.close()
        await fresh.close()


async def test_wait_timeout_takes_the_on_timeout_path(container: Container, engine: Engine, merchant: str) -> None:
    flow = {
        "steps": [
            {
                "id": "pod",
                "type": "wait_for_event",
                "key": "pod-{{input.order}}",
                "timeout_s": 0.2,
                "on_timeout": [{"id": "escalate", "type": "action", "action": "log", "input": {"message": "late"}}],
            }
        ]
    }
    flow_id = await publish(container, engine, merchant, "pod", flow)
    run_id = await start(container, flow_id, {"order": 7})
    assert await run_to_rest(container, engine) == {run_id: "waiting"}
    async with container.db.engine.connect() as conn:
        assert (await conn.execute(select(Wait.wait_key))).scalars().all() == ["pod-7"]
    await asyncio.sleep(0.25)

    final = await run_to_rest(container, engine, extra_scheduler=True)

    assert final == {run_id: "succeeded"}
    async with container.db.session(SYSTEM.scope) as s:
        journal = await service.get_journal(s, run_id)
    assert [(j.step_path, j.output) for j in journal] == [
        ("pod.escalate", {"logged": "late"}),
        ("pod", {"timed_out": True}),
    ]


async def test_event_resolves_wait_by_key(container: Container, engine: Engine, merchant: str) -> None:
    flow = {"steps": [{"id": "pod", "type": "wait_for_event", "key": "pod-{{input.order}}"}]}
    flow_id = await publish(container, engine, merchant, "pod2", flow)
    run_id = await start(container, flow_id, {"order": 8})
    assert await run_to_rest(container, engine) == {run_id: "waiting"}

    async with container.db.session(SYSTEM.scope) as s:
        started, resolved = await service.publish_event(
            s, SYSTEM, merchant, "delivered", key="pod-8", payload={"signed": "Ann"}, idem="e1"
        )
    assert (started, len(resolved)) == ([], 1)

    assert await run_to_rest(container, engine) == {run_id: "succeeded"}
    assert (await get_run(container, run_id)).output == {"signed": "Ann"}


async def test_worker_that_lost_its_lease_cannot_commit(container: Container, engine: Engine, merchant: str) -> None:
    flow_id = await publish(container, engine, merchant, "fence", {"steps": [{"id": "a", "type": "map", "output": 1}]})
    run_id = await start(container, flow_id, {})
    stale = Worker(engine, lease_seconds=30)
    [claimed] = await stale.claim(10)
    async with container.db.engine.begin() as conn:  # the worker stalls past its lease
        await conn.execute(update(RUNS).values(lease_expires_at=RUNS.c.started_at))
    assert await reap_expired_leases(container.db, container.metrics) == 1

    stale.batcher.start()
    try:
        row = {
            "run_id": run_id,
            "step_path": "a",
            "step_type": "map",
            "attempt": 1,
            "status": "succeeded",
            "output": 1,
            "error": None,
            "started_at": claimed_time(),
            "finished_at": claimed_time(),
            "duration_ms": 0.1,
            "lease_epoch": claimed.lease_epoch,
            "superseded": False,
            "partner_id": claimed.partner_id,
            "merchant_id": claimed.merchant_id,
        }
        with pytest.raises(LeaseLost):
            await stale.batcher.submit(
                CommitOp(run_id, claimed.lease_epoch, journal=[row], run_update={"status": "succeeded"})
            )
    finally:
        await stale.batcher.stop()

    async with container.db.engine.connect() as conn:
        assert (await conn.execute(select(JOURNAL.c.seq))).all() == []
    assert await statuses(container) == {run_id: "queued"}
    assert await run_to_rest(container, engine) == {run_id: "succeeded"}
    run = await get_run(container, run_id)
    assert (run.claims, run.lease_epoch) == (2, 3)


def claimed_time():
    from crossdock.core.clock import utcnow

    return utcnow()


async def test_scheduler_wakes_only_due_timers(container: Container, engine: Engine, merchant: str) -> None:
    flow_id = await publish(container, engine, merchant, "t2", {"steps": [{"id": "n", "type": "timer", "seconds": 30}]})
    run_id = await start(container, flow_id, {})
    await run_to_rest(container, engine)
    assert (await Scheduler(engine).tick())["woken"] == 0
    assert await statuses(container) == {run_id: "waiting"}
    async with container.db.engine.begin() as conn:
        await conn.execute(update(RUNS).values(wake_at=RUNS.c.created_at))
    await wait_until(lambda: _woken(engine))
    assert await statuses(container) == {run_id: "queued"}


async def _woken(engine: Engine) -> bool:
    return (await Scheduler(engine).tick())["woken"] == 1
