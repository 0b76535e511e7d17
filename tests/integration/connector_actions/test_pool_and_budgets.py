"""The connector pool: tenancy of connections, reuse and invalidation of clients, and the per-account
rate budget holding when many runs hit one connection."""

from __future__ import annotations

import time
from typing import Any

import pytest

from crossdock.bootstrap import Container
from crossdock.connections import service as connections
from crossdock.connections.schemas import ConnectionUpdate
from crossdock.connectors.actions import ConnectorPool, RateBudget
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.sandbox.server import Sandbox
from crossdock.connectors.sandbox.shopify_orders import make_order
from crossdock.connectors.sandbox.shopify_state import DEFAULT_SHOP
from crossdock.engine.core import Engine
from tests.integration.engine.conftest import new_merchant, publish, run_to_rest, start

from .conftest import SYSTEM, SandboxServer, action_step, call, run_flow, shopify_connection


@pytest.fixture
def order(sandbox: Sandbox) -> dict[str, Any]:
    return sandbox.shopify.seed_orders([make_order(11)])[0]


def requests_seen(sandbox: Sandbox) -> int:
    shops = sandbox.shopify.counters()["shops"]
    return int(shops[DEFAULT_SHOP]["rest"]["accepted"]) if DEFAULT_SHOP in shops else 0


async def test_another_merchants_connection_is_refused(
    container: Container, engine: Engine, merchant: str, sandbox: Sandbox, sandbox_server: SandboxServer, order: Any
) -> None:
    other = await new_merchant(container, "Borealis")
    foreign = await shopify_connection(container, other, sandbox_server.url)
    steps = [action_step("order", "shopify.get_order", {"connection": foreign, "order_id": order["id"]})]

    run = await run_flow(container, engine, merchant, steps, {})
    with pytest.raises(ConnectorError) as missing:
        await call(engine, merchant, "shopify.get_order", {"connection": "con_missing", "order_id": order["id"]})

    assert run["status"] == "needs_attention"
    assert (run["error"]["kind"], run["error"]["category"], run["error"]["step"]) == ("config", "not_found", "order")
    assert (missing.value.kind, missing.value.category, missing.value.vendor_code) == (
        FailureKind.CONFIG,
        FailureCategory.NOT_FOUND,
        "connection_not_found",
    )
    assert missing.value.message.replace("con_missing", foreign) == run["error"]["message"]
    assert requests_seen(sandbox) == 0


async def test_wrong_system_and_disabled_connection(
    container: Container, engine: Engine, merchant: str, sandbox_server: SandboxServer, order: Any
) -> None:
    conn = await shopify_connection(container, merchant, sandbox_server.url)
    with pytest.raises(ConnectorError) as wrong:
        await call(engine, merchant, "netsuite.find_items", {"connection": conn, "skus": ["A"]})
    async with container.db.session(SYSTEM.scope) as s:
        await connections.update_connection(
            s, SYSTEM, conn, ConnectionUpdate(status="disabled"), registry=container.connectors, box=container.secrets
        )
    with pytest.raises(ConnectorError) as disabled:
        await call(engine, merchant, "shopify.get_order", {"connection": conn, "order_id": order["id"]})

    assert (wrong.value.kind, wrong.value.vendor_code) == (FailureKind.CONFIG, "connection_wrong_system")
    assert (disabled.value.kind, disabled.value.vendor_code) == (FailureKind.CONFIG, "connection_disabled")


async def test_clients_are_reused_and_rebuilt_when_the_connection_changes(
    container: Container, engine: Engine, merchant: str, sandbox_server: SandboxServer, order: Any
) -> None:
    pool = container.extras["connectors.pool"]
    assert isinstance(pool, ConnectorPool)
    conn = await shopify_connection(container, merchant, sandbox_server.url)
    data = {"connection": conn, "order_id": order["id"]}
    await call(engine, merchant, "shopify.get_order", data)
    await call(engine, merchant, "shopify.get_order", data)
    assert pool.built == 1

    async with container.db.session(SYSTEM.scope) as s:
        await connections.update_connection(
            s,
            SYSTEM,
            conn,
            ConnectionUpdate(secrets={"access_token": "shpat_revoked", "webhook_secrets": ["x"]}),
            registry=container.connectors,
            box=container.secrets,
        )
    with pytest.raises(ConnectorError) as caught:
        await call(engine, merchant, "shopify.get_order", data)

    assert pool.built == 2
    assert (caught.value.kind, caught.value.status) == (FailureKind.AUTH, 401)


@pytest.mark.slow
async def test_many_runs_on_one_connection_stay_within_its_budget(
    container: Container, engine: Engine, merchant: str, sandbox: Sandbox, sandbox_server: SandboxServer, order: Any
) -> None:
    pool = container.extras["connectors.pool"]
    assert isinstance(pool, ConnectorPool)
    pool.budgets["shopify"] = RateBudget(15.0, 3.0)
    conn = await shopify_connection(container, merchant, sandbox_server.url)
    flow = await publish(
        container,
        engine,
        merchant,
        "budgeted",
        {"steps": [action_step("order", "shopify.get_order", {"connection": conn, "order_id": order["id"]})]},
    )
    runs = [await start(container, flow, {"n": i}) for i in range(36)]

    started = time.monotonic()
    statuses = await run_to_rest(container, engine, concurrency=64, merchant_concurrency=64)
    elapsed = time.monotonic() - started

    rest = sandbox.shopify.counters()["shops"][DEFAULT_SHOP]["rest"]
    assert [statuses[r] for r in runs] == ["succeeded"] * 36
    assert (rest["accepted"], rest["throttled"]) == (36, 0)
    # 36 requests at 15/s after a burst of 3 take at least (36 - 3) / 15 = 2.2 s, and no one-second
    # window releases more than rate + burst. The server counts arrivals, not releases: requests
    # released at the end of one window can arrive in the next (the observer slip in docs/engine.md).
    # On SQLite under the whole suite's load, bookings waiting on the writer lock made that 2 (19 and
    # 20 seen in clean-clone CI runs); the rate itself is checked by the elapsed time below.
    assert rest["max_in_window"] <= 18 + 2
    assert elapsed >= 2.0
