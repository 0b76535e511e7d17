"""Fixtures for engine integration tests: a merchant, an engine, flow publishing and a worker runner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.core.context import Actor
from crossdock.engine import service
from crossdock.engine.core import Engine, engine_of
from crossdock.engine.journal import RUNS
from crossdock.engine.models import Run
from crossdock.engine.schemas import FlowCreate, RunStart
from crossdock.engine.service import new_run_row
from crossdock.engine.worker import Worker
from crossdock.tenants import service as tenants
from crossdock.tenants.schemas import MerchantCreate, PartnerCreate

SYSTEM = Actor.system()


@pytest.fixture
async def engine(container: Container) -> AsyncIterator[Engine]:
    eng = engine_of(container)
    yield eng
    await eng.close()


async def bulk_enqueue(container: Container, flow_id: str, n: int) -> list[str]:
    """Queue n runs of version 1 of a flow in one INSERT (no API, no intake)."""
    async with container.db.session(SYSTEM.scope) as s:
        flow = await service.get_flow(s, flow_id)
        version = await service.get_version(s, flow_id, 1)
    rows = [
        new_run_row(flow_id, version.id, flow.partner_id, flow.merchant_id, {"i": i}, {"kind": "test"}, None)
        for i in range(n)
    ]
    async with container.db.engine.begin() as conn:
        await conn.execute(RUNS.insert(), rows)
    return [r["id"] for r in rows]


async def new_merchant(container: Container, name: str = "Aurora") -> str:
    async with container.db.session(SYSTEM.scope) as s:
        partner = await tenants.create_partner(s, SYSTEM, PartnerCreate(name=f"P {name}"))
        merchant = await tenants.create_merchant(s, SYSTEM, MerchantCreate(partner_id=partner.id, name=name))
        return merchant.id


@pytest.fixture
async def merchant(container: Container) -> str:
    return await new_merchant(container)


async def publish(container: Container, engine: Engine, merchant_id: str, key: str, definition: Any) -> str:
    """Create and publish a flow; returns the flow id."""
    async with container.db.session(SYSTEM.scope) as s:
        flow, version = await service.create_flow(
            s, SYSTEM, engine, FlowCreate(merchant_id=merchant_id, key=key, name=key, definition=definition)
        )
        await service.publish_version(s, SYSTEM, engine, flow.id, version.number)
        return flow.id


async def start(container: Container, flow_id: str, input_: Any = None, key: str | None = None) -> str:
    async with container.db.session(SYSTEM.scope) as s:
        run, _ = await service.start_run(s, SYSTEM, flow_id, RunStart(input=input_, idempotency_key=key))
        return run.id


async def get_run(container: Container, run_id: str) -> Run:
    async with container.db.session(SYSTEM.scope) as s:
        return await service.get_run(s, run_id)


async def statuses(container: Container) -> dict[str, str]:
    async with container.db.engine.connect() as conn:
        return {r[0]: r[1] for r in (await conn.execute(select(Run.id, Run.status))).all()}


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


@asynccontextmanager
async def running_worker(engine: Engine, **kwargs: Any) -> AsyncIterator[Worker]:
    kwargs.setdefault("poll_seconds", 0.01)
    worker = Worker(engine, **kwargs)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, drain_seconds=2))
    try:
        yield worker
    finally:
        stop.set()
        await task


async def run_to_rest(
    container: Container, engine: Engine, timeout: float = 20.0, extra_scheduler: bool = False, **kwargs: Any
) -> dict[str, str]:
    """Run a worker (and optionally a scheduler) until no run is queued or running; returns statuses."""
    from crossdock.engine.scheduler import Scheduler

    scheduler = Scheduler(engine, interval=0.01) if extra_scheduler else None
    if scheduler is not None:
        await scheduler.tick()
    stop = asyncio.Event()
    sched_task = asyncio.create_task(scheduler.run(stop)) if scheduler else None

    async def idle() -> bool:
        return not any(s in ("queued", "running") for s in (await statuses(container)).values())

    try:
        async with running_worker(engine, **kwargs):
            await wait_until(idle, timeout)
    finally:
        stop.set()
        if sched_task:
            await sched_task
    return await statuses(container)


async def publish_webhook_flow(api: Any, world: Any, definition: Any, key: str = "orders") -> tuple[str, str]:
    """Create and publish a flow through the API as merchant M1a's admin; (flow id, webhook endpoint id)."""
    h = world.headers("m1a_admin")
    r = await api.post(
        "/v1/flows",
        json={"merchant_id": world.ids["M1a"], "key": key, "name": key.title(), "definition": definition},
        headers=h,
    )
    assert r.status_code == 201, r.text
    flow_id = r.json()["flow"]["id"]
    r = await api.post(f"/v1/flows/{flow_id}/versions/1/publish", headers=h)
    assert (r.status_code, r.json()["status"]) == (200, "published")
    triggers = (await api.get(f"/v1/flows/{flow_id}/triggers", headers=h)).json()
    return flow_id, str(next(t["id"] for t in triggers if t["kind"] == "webhook"))
