"""The group commits keep their autocommit connections between writes (PostgreSQL).

Checking a connection out of the pool for every intake write cost more CPU than the write itself
(docs/performance.md, profile 7); these tests pin down that writes reuse their connections, that a
connection broken under them is replaced without losing a delivery, and that closing gives every
connection back.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from sqlalchemy import event, func, select, text

from crossdock.bootstrap import Container
from crossdock.engine.api import hooks_router, router
from crossdock.engine.core import engine_of
from crossdock.engine.models import Run
from tests.factories import World, make_world

from .conftest import publish_webhook_flow

FLOW = {
    "triggers": [{"type": "webhook", "name": "orders", "secret": "s3cret"}],
    "steps": [{"id": "echo", "type": "map", "output": {"id": "=input.id"}}],
}


@pytest.fixture
def postgres_only(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("SQLite writes in a transaction per batch; there is nothing held")


@pytest.fixture
async def api(container: Container, postgres_only: None) -> AsyncIterator[httpx.AsyncClient]:
    from crossdock.web.app import create_app

    app = create_app(container)
    app.include_router(router)
    app.include_router(hooks_router)
    # A failed write answers 500 as a server would, instead of raising into the test.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://crossdock.test") as c:
        yield c
    await engine_of(container).close()


async def _endpoint(api: httpx.AsyncClient, world: World) -> str:
    return (await publish_webhook_flow(api, world, FLOW))[1]


async def _deliver(api: httpx.AsyncClient, endpoint: str, i: int) -> httpx.Response:
    body = orjson.dumps({"id": i})
    signature = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    return await api.post(
        f"/hooks/{endpoint}", content=body, headers={"X-Crossdock-Signature": signature, "X-Event-Id": f"e{i}"}
    )


async def _runs(container: Container) -> int:
    async with container.db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(Run))).scalar_one())


async def test_sequential_intake_writes_reuse_their_connection(api: httpx.AsyncClient, container: Container) -> None:
    world = await make_world(container)
    endpoint = await _endpoint(api, world)
    assert (await _deliver(api, endpoint, 0)).status_code == 200  # warms the endpoint cache
    checkouts = 0

    def count(*_args: object) -> None:
        nonlocal checkouts
        checkouts += 1

    pool = container.db.engine.sync_engine.pool
    event.listen(pool, "checkout", count)
    try:
        for i in range(1, 13):
            r = await _deliver(api, endpoint, i)
            assert r.status_code == 200 and not r.json()["duplicate"], r.text
    finally:
        event.remove(pool, "checkout", count)

    # Twelve writes, one after another: at most one connection per write in flight is ever taken
    # from the pool (checking one out per write took twelve).
    assert checkouts <= engine_of(container).intake.concurrency
    assert await _runs(container) == 13


async def test_a_broken_held_connection_is_replaced_and_no_delivery_is_lost(
    api: httpx.AsyncClient, container: Container
) -> None:
    world = await make_world(container)
    endpoint = await _endpoint(api, world)
    assert (await _deliver(api, endpoint, 1)).status_code == 200
    held = engine_of(container).intake._held
    assert len(held) == 1
    pid = (await held[0][0].get_raw_connection()).driver_connection.get_server_pid()  # type: ignore[union-attr]
    async with container.db.engine.connect() as conn:  # the server ends the held connection's session
        assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()

    # Dropped before the write once asyncpg has seen the socket close (200); if the write got there
    # first, it fails and is not acknowledged (500), and the sender retries.
    first = await _deliver(api, endpoint, 2)
    assert first.status_code in (200, 500), first.text
    if first.status_code == 500:
        retried = await _deliver(api, endpoint, 2)
        assert retried.status_code == 200, retried.text
    assert all(c.sync_connection is not None for c, _ in engine_of(container).intake._held)
    assert (await _deliver(api, endpoint, 3)).status_code == 200

    async with container.db.engine.connect() as conn:
        keys = (await conn.execute(select(Run.dedup_key))).scalars().all()
    assert len(keys) == len(set(keys)) == 3  # events 1, 2 and 3, each once


async def test_a_held_connection_the_server_closed_is_not_written_on(
    api: httpx.AsyncClient, container: Container
) -> None:
    world = await make_world(container)
    endpoint = await _endpoint(api, world)
    assert (await _deliver(api, endpoint, 1)).status_code == 200
    [(conn, _opened)] = engine_of(container).intake._held
    driver = (await conn.get_raw_connection()).driver_connection
    async with container.db.engine.connect() as admin:  # a restart, failover or idle timeout
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": driver.get_server_pid()})  # type: ignore[union-attr]
    for _ in range(200):
        if driver.is_closed():  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.01)
    assert driver.is_closed()  # type: ignore[union-attr]
    assert (await _deliver(api, endpoint, 2)).status_code == 200  # no write is failed on it


async def test_closing_the_intake_returns_its_connections(api: httpx.AsyncClient, container: Container) -> None:
    world = await make_world(container)
    endpoint = await _endpoint(api, world)
    for i in range(3):
        assert (await _deliver(api, endpoint, i)).status_code == 200
    pool = container.db.engine.sync_engine.pool
    assert pool.checkedout() >= 1  # type: ignore[attr-defined]  # the held connection
    await engine_of(container).intake.close()
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_group_commits_hold_at_most_the_processs_held_slots(container: Container, postgres_only: None) -> None:
    """However many worker loops a process runs, their group commits together keep at most half the
    pool checked out between writes; the rest of the process always finds a connection."""
    from crossdock.engine.batching import GroupCommitter

    class Probe(GroupCommitter[int]):
        async def _write(self, batch: list[int]) -> bool:
            async with self._autocommit() as conn:
                await conn.execute(text("SELECT pg_sleep(0.02)"))
            return True

    db = container.db
    slots = db.held_slots
    probes = [Probe(db, kind="probe", max_batch=1, concurrency=3, metrics=None) for _ in range(7)]
    for p in probes:  # each once with three writes in flight
        for i in range(3):
            p._put(i)
        for _ in range(500):  # until its writes are done (no fixed sleep: CI machines are busy)
            await asyncio.sleep(0.01)
            if not p._queue and not p._inflight:
                break
        assert not p._queue and not p._inflight
    pool = db.engine.sync_engine.pool
    assert sum(len(p._held) for p in probes) == pool.checkedout() == slots  # type: ignore[attr-defined]
    async with db.engine.connect() as conn:  # not starved
        assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    for p in probes:
        await p.close()
    assert (db.held_slots, pool.checkedout()) == (slots, 0)  # type: ignore[attr-defined]
