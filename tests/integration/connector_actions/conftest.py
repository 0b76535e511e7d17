"""Fixtures for connector-action tests: the sandbox over real HTTP, connections, the engine with actions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.connections import service as connections
from crossdock.connections.schemas import ConnectionCreate
from crossdock.connectors.actions import ConnectorPool, RateBudget, register_connector_actions
from crossdock.connectors.sandbox.serve import serve_in_thread
from crossdock.connectors.sandbox.server import Sandbox, create_sandbox_app
from crossdock.connectors.sandbox.shipstation_state import DEFAULT_API_KEY, DEFAULT_API_SECRET
from crossdock.connectors.sandbox.shopify_state import DEFAULT_SHOP, DEFAULT_TOKEN
from crossdock.core.context import Actor
from crossdock.engine.actions import ActionContext
from crossdock.engine.core import Engine, engine_of
from crossdock.engine.models import Run
from tests.integration.engine.conftest import new_merchant, publish, run_to_rest, start

SYSTEM = Actor.system()
SHOPIFY_SECRET = "shpss_test_secret"
SHIPSTATION_TOKEN = "ss-hook-token-0123456789abcdef"
BC_TENANT, BC_CLIENT = "contoso", ("bc-app", "bc-secret")
NS_ACCOUNT = "1234567-sb1"
NS_CREDS = {"consumer_key": "ck-1", "consumer_secret": "cs-1", "token_id": "tk-1", "token_secret": "ts-1"}


@dataclass
class SandboxServer:
    sandbox: Sandbox
    url: str


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    sandbox = Sandbox()
    with serve_in_thread(create_sandbox_app(sandbox)) as server:
        yield SandboxServer(sandbox, server.url)


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Sandbox:
    """The sandbox with every simulator emptied and the test credentials registered."""
    sb = sandbox_server.sandbox
    sb.shopify.reset()
    sb.businesscentral.reset()
    sb.businesscentral.add_client(*BC_CLIENT)
    sb.netsuite.reset()
    sb.netsuite.add_account(NS_ACCOUNT, **NS_CREDS)
    sb.shipstation.reset()
    return sb


@pytest.fixture
async def engine(container: Container) -> AsyncIterator[Engine]:
    eng = engine_of(container)
    # ShipStation's real budget (39/min) would make every second call wait 1.5 s; its pacing is
    # covered by the client tests and the budget mechanism by test_pool_and_budgets.
    register_connector_actions(eng, container, revalidate_s=0.0, budgets={"shipstation": RateBudget(50.0, 50.0)})
    yield eng
    pool = container.extras.get("connectors.pool")
    if isinstance(pool, ConnectorPool):
        await pool.aclose()
    await eng.close()


@pytest.fixture
async def merchant(container: Container) -> str:
    return await new_merchant(container, "Aurora")


async def add_connection(
    container: Container, merchant_id: str, system: str, config: dict[str, Any], secrets: dict[str, Any]
) -> str:
    async with container.db.session(SYSTEM.scope) as s:
        conn = await connections.create_connection(
            s,
            SYSTEM,
            ConnectionCreate(
                merchant_id=merchant_id, system=system, name=f"{system}-{uuid.uuid4().hex[:6]}", config=config,
                secrets=secrets,
            ),
            registry=container.connectors,
            box=container.secrets,
        )  # fmt: skip
        return conn.id


async def shopify_connection(container: Container, merchant_id: str, url: str, **config: Any) -> str:
    return await add_connection(
        container,
        merchant_id,
        "shopify",
        {"shop_domain": DEFAULT_SHOP, "base_url": f"{url}/shopify", **config},
        {"access_token": DEFAULT_TOKEN, "webhook_secrets": [SHOPIFY_SECRET]},
    )


async def bc_connection(container: Container, merchant_id: str, url: str, company_id: str) -> str:
    return await add_connection(
        container,
        merchant_id,
        "businesscentral",
        {"tenant": BC_TENANT, "company_id": company_id, "base_url": f"{url}/businesscentral"},
        {"client_id": BC_CLIENT[0], "client_secret": BC_CLIENT[1]},
    )


async def ns_connection(container: Container, merchant_id: str, url: str) -> str:
    return await add_connection(
        container, merchant_id, "netsuite", {"account_id": NS_ACCOUNT, "base_url": f"{url}/netsuite"}, NS_CREDS
    )


async def shipstation_connection(container: Container, merchant_id: str, url: str) -> str:
    return await add_connection(
        container,
        merchant_id,
        "shipstation",
        {"base_url": f"{url}/shipstation"},
        {"api_key": DEFAULT_API_KEY, "api_secret": DEFAULT_API_SECRET, "webhook_token": SHIPSTATION_TOKEN},
    )


def context(engine: Engine, merchant_id: str | None, key: str = "run_test:step:key") -> ActionContext:
    """What the engine hands an action, for calling one directly."""

    async def no_ledger(_key: str) -> None:
        return None

    return ActionContext(
        run_id="run_test",
        step_path="step",
        attempt=1,
        partner_id=None,
        merchant_id=merchant_id,
        idempotency_key=key,
        http=engine.http,
        acquire=engine.rates.acquire,
        ledger=no_ledger,
    )


async def call(engine: Engine, merchant_id: str | None, action: str, data: dict[str, Any], key: str = "k1") -> Any:
    """Run one action the way a step does (input and output validated by the engine's spec)."""
    spec = engine.actions.get(action)
    payload = spec.validate_input(data)
    return spec.validate_output(await spec.fn(context(engine, merchant_id, f"run_test:step:{key}"), payload))


async def run_flow(
    container: Container, engine: Engine, merchant_id: str, steps: list[dict[str, Any]], input_: Any, **worker: Any
) -> dict[str, Any]:
    """Publish a one-off flow, run it once to rest and return the run's row."""
    flow_id = await publish(
        container, engine, merchant_id, f"f-{uuid.uuid4().hex[:8]}", {"steps": steps, "output": "=steps"}
    )
    run_id = await start(container, flow_id, input_)
    await run_to_rest(container, engine, **worker)
    async with container.db.engine.connect() as conn:
        row = (await conn.execute(select(Run).where(Run.id == run_id))).one()
    return dict(row._mapping)


def action_step(step_id: str, action: str, input_: Any, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "action", "action": action, "input": input_, "retry": {"max_attempts": 1}, **extra}
