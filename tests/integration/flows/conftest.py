"""Fixtures for flow-template tests: an engine with the commerce transforms and in-memory stand-ins for
the connector actions (crossdock/connectors/actions is not merged yet), merchants and connections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from crossdock.bootstrap import Container
from crossdock.connections import service as connections
from crossdock.connections.schemas import ConnectionCreate
from crossdock.core.context import Actor
from crossdock.engine.actions import ActionContext, ActionSpec, StepFailed
from crossdock.engine.core import Engine, engine_of
from crossdock.flows.commerce import register_commerce_actions
from crossdock.tenants import service as tenants
from crossdock.tenants.schemas import MerchantCreate, PartnerCreate

SYSTEM = Actor.system()
CONNECTIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "shopify": ({"shop_domain": "aurora.myshopify.com"}, {"access_token": "shpat_x", "webhook_secrets": ["whsec_x"]}),
    "businesscentral": ({"tenant": "t1", "company_id": "c1"}, {"client_id": "id", "client_secret": "s"}),
    "netsuite": ({"account_id": "123_SB1"}, {"consumer_key": "a", "consumer_secret": "b", "token_id": "c", "token_secret": "d"}),
    "chat": ({"flavor": "slack"}, {"webhook_url": "https://hooks.example/T1"}),
}  # fmt: skip


@dataclass
class FakeSystems:
    """What the connector actions would do against the simulators: items, customers, orders, calls."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    credit: dict[str, Any] = field(default_factory=lambda: {"creditLimit": 0, "balanceDue": 0})
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def install(self, engine: Engine) -> None:
        def spec(name: str, fn: Any) -> None:
            async def action(ctx: ActionContext, data: Any) -> Any:
                self.calls.append((name, data))
                return fn(data)

            engine.actions.register(ActionSpec(name, action), replace=True)

        for erp in ("businesscentral", "netsuite"):
            spec(f"{erp}.find_items", lambda d: {"items": [self.items[s] for s in d["skus"] if s in self.items]})
            spec(f"{erp}.upsert_customer", lambda d: {"number": "C10000", "id": "cus-1", **self.credit})
            spec(f"{erp}.upsert_sales_order", self._upsert)
        for name in ("shopify.update_order", "chat.post", "email.send"):
            spec(name, lambda d: {"ok": True})

    def _upsert(self, data: dict[str, Any]) -> dict[str, Any]:
        body = data["order"]
        key = body.get("externalDocumentNumber") or data.get("external_id")
        if not key:
            raise StepFailed("no external id", category="validation")
        existing = self.orders.get(key)
        if existing is None:
            existing = self.orders[key] = {"number": f"SO{1000 + len(self.orders)}", "body": body}
        return {"number": existing["number"], "created": existing["body"] is body}


@pytest.fixture
async def systems() -> FakeSystems:
    return FakeSystems()


@pytest.fixture
async def engine(container: Container, systems: FakeSystems) -> AsyncIterator[Engine]:
    eng = engine_of(container)
    register_commerce_actions(eng)
    systems.install(eng)
    yield eng
    await eng.close()


async def new_merchant(container: Container, name: str, partner_id: str | None = None) -> tuple[str, str]:
    async with container.db.session(SYSTEM.scope) as s:
        if partner_id is None:
            partner_id = (await tenants.create_partner(s, SYSTEM, PartnerCreate(name=f"P {name}"))).id
        merchant = await tenants.create_merchant(s, SYSTEM, MerchantCreate(partner_id=partner_id, name=name))
        return partner_id, merchant.id


async def connect(container: Container, merchant_id: str, system: str, name: str | None = None) -> str:
    config, secrets = CONNECTIONS[system]
    async with container.db.session(SYSTEM.scope) as s:
        body = ConnectionCreate(
            merchant_id=merchant_id, system=system, name=name or system, config=config, secrets=secrets
        )
        conn = await connections.create_connection(
            s, SYSTEM, body, registry=container.connectors, box=container.secrets
        )
        return conn.id
