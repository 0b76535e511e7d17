"""Fixtures for flow-template tests: the real engine with the real connector actions, the simulators
over real HTTP (Shopify, Business Central, NetSuite, ShipStation), merchants, connections and instances.

`Desk` bundles what a template test does: seed the simulators, instantiate a template with
connections to them, start runs, run the worker to rest, decide approvals and read the cases.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.cases.models import Case, CaseRun
from crossdock.cases.runtime import sync_failed_runs
from crossdock.connections import service as connections
from crossdock.connections.schemas import ConnectionCreate
from crossdock.connectors.sandbox.server import Sandbox
from crossdock.connectors.sandbox.shopify_orders import make_order, make_product
from crossdock.core.context import Actor
from crossdock.engine import service as engine_service
from crossdock.engine.core import Engine
from crossdock.engine.models import Run
from crossdock.engine.schemas import RunStart
from crossdock.flows import service
from crossdock.flows.models import FlowInstance
from crossdock.flows.schemas import InstanceCreate
from crossdock.tenants import service as tenants
from crossdock.tenants.schemas import MerchantCreate, PartnerCreate
from tests.integration.connector_actions.conftest import (
    NS_ACCOUNT,
    SandboxServer,
    bc_connection,
    engine,
    ns_connection,
    sandbox,
    sandbox_server,
    shipstation_connection,
    shopify_connection,
)
from tests.integration.engine.conftest import get_run, run_to_rest

__all__ = ["engine", "sandbox", "sandbox_server"]  # fixtures shared with connector_actions

SYSTEM = Actor.system()
COMPANY = "7c9a5b1e-0000-4000-8000-0000000f1005"
PRODUCT = make_product(1)
VARIANTS = PRODUCT["variants"]  # CD-00001-S and CD-00001-M at 43.83
ORDER = make_order(4, variants=VARIANTS, line_count=2)  # 10% discount, subtotal 78.87, total 93.34
ERPS = ["businesscentral", "netsuite"]
NS_MAIN = {"id": "1", "refName": "MAIN"}  # the simulated NetSuite's one stock location


async def new_merchant(container: Container, name: str, partner_id: str | None = None) -> tuple[str, str]:
    async with container.db.session(SYSTEM.scope) as s:
        if partner_id is None:
            partner_id = (await tenants.create_partner(s, SYSTEM, PartnerCreate(name=f"P {name}"))).id
        merchant = await tenants.create_merchant(s, SYSTEM, MerchantCreate(partner_id=partner_id, name=name))
        return partner_id, merchant.id


@dataclass
class Desk:
    """One merchant wired to the simulators, and the steps of a template test."""

    container: Container
    engine: Engine
    sandbox: Sandbox
    url: str
    partner_id: str
    merchant_id: str

    # -- simulators ----------------------------------------------------------------------------------
    def seed_shop(self, *orders: dict[str, Any]) -> None:
        self.sandbox.shopify.seed_products([PRODUCT])
        self.sandbox.shopify.seed_orders(list(orders))

    def seed_bc(self, items: dict[str, float] | None = None, customers: list[dict[str, Any]] | None = None) -> None:
        bc = self.sandbox.businesscentral
        if COMPANY not in {c.id for c in bc.store.companies.values()}:
            bc.add_company("CRONUS", COMPANY)
        prices = items if items is not None else {v["sku"]: float(v["price"]) for v in VARIANTS}
        bc.seed_items(
            COMPANY,
            [{"number": n, "displayName": n, "unitPrice": p, "inventory": 100.0} for n, p in prices.items()],
        )
        if customers:
            bc.seed_customers(COMPANY, customers)

    def seed_ns(self, items: dict[str, float] | None = None, customers: list[dict[str, Any]] | None = None) -> None:
        ns = self.sandbox.netsuite
        prices = items if items is not None else {v["sku"]: float(v["price"]) for v in VARIANTS}
        ns.seed_items(
            NS_ACCOUNT,
            [
                {
                    "externalId": n,
                    "itemId": n,
                    "displayName": n,
                    "basePrice": p,
                    "locations": {"items": [{"location": NS_MAIN, "quantityAvailable": 100, "quantityOnHand": 100}]},
                }
                for n, p in prices.items()
            ],
        )
        if customers:
            ns.seed_customers(NS_ACCOUNT, customers)

    def seed_erp(self, erp: str, items: dict[str, float] | None = None) -> None:
        (self.seed_bc if erp == "businesscentral" else self.seed_ns)(items)

    def bc_records(self, entity: str) -> list[dict[str, Any]]:
        return self.sandbox.businesscentral.records(COMPANY, entity)

    def bc_lines(self, doc_id: str) -> list[dict[str, Any]]:
        store = self.sandbox.businesscentral.store
        return store.doc_lines(store.company(COMPANY), doc_id)

    def ns_records(self, record_type: str) -> list[dict[str, Any]]:
        return list(self.sandbox.netsuite.account(NS_ACCOUNT).table(record_type).values())

    # -- connections and instances -------------------------------------------------------------------
    async def connect(self, system: str) -> str:
        if system == "shopify":
            return await shopify_connection(self.container, self.merchant_id, self.url)
        if system == "businesscentral":
            return await bc_connection(self.container, self.merchant_id, self.url, COMPANY)
        if system == "netsuite":
            return await ns_connection(self.container, self.merchant_id, self.url)
        if system == "shipstation":
            return await shipstation_connection(self.container, self.merchant_id, self.url)
        if system == "chat":
            config, secrets = {"flavor": "slack"}, {"webhook_url": f"{self.url}/nowhere"}
        else:
            raise AssertionError(system)
        async with self.container.db.session(SYSTEM.scope) as s:
            body = ConnectionCreate(
                merchant_id=self.merchant_id, system=system, name=f"{system}-{uuid.uuid4().hex[:6]}",
                config=config, secrets=secrets,
            )  # fmt: skip
            conn = await connections.create_connection(
                s, SYSTEM, body, registry=self.container.connectors, box=self.container.secrets
            )
            return conn.id

    async def instance(
        self, template: str, bindings: dict[str, str], version: int = 1, **overrides: Any
    ) -> FlowInstance:
        bound = {role: await self.connect(system) for role, system in bindings.items()}
        async with self.container.db.session(SYSTEM.scope) as s:
            body = InstanceCreate(
                merchant_id=self.merchant_id, template=template, version=version, overrides=overrides, bindings=bound
            )
            return await service.create_instance(s, SYSTEM, self.engine, body)

    # -- runs --------------------------------------------------------------------------------------
    async def start(self, inst: FlowInstance, input_: Any, key: str | None = None) -> str:
        async with self.container.db.session(SYSTEM.scope) as s:
            run, _ = await engine_service.start_run(
                s, SYSTEM, inst.engine_flow_id, RunStart(input=input_, idempotency_key=key)
            )
            return run.id

    async def settle(self) -> dict[str, str]:
        """Run the worker until nothing is queued or running; then let the desk sweep failed runs."""
        statuses = await run_to_rest(self.container, self.engine)
        await sync_failed_runs(self.container)
        return statuses

    async def run(self, inst: FlowInstance, input_: Any) -> tuple[str, str]:
        run_id = await self.start(inst, input_)
        statuses = await self.settle()
        return run_id, statuses[run_id]

    async def get_run(self, run_id: str) -> Run:
        return await get_run(self.container, run_id)

    async def decide(self, decision: str, *, prompt_contains: str = "") -> str:
        """Resolve the one open approval (optionally the one whose prompt contains a text)."""
        async with self.container.db.session(SYSTEM.scope) as s:
            waits, _ = await engine_service.list_waits(s, limit=10, cursor=None, status="open")
            waits = [w for w in waits if w.kind == "approval" and prompt_contains in (w.prompt or "")]
            assert len(waits) == 1, [w.prompt for w in waits]
            await engine_service.resolve_wait(
                s, SYSTEM, waits[0].id, resolution={"decision": decision, "by": "usr_test"}, idempotency_key=waits[0].id
            )
            return str(waits[0].prompt)

    async def open_approvals(self) -> list[str]:
        async with self.container.db.session(SYSTEM.scope) as s:
            waits, _ = await engine_service.list_waits(s, limit=10, cursor=None, status="open")
            return [str(w.prompt) for w in waits if w.kind == "approval"]

    async def case_of(self, run_id: str) -> Case:
        async with self.container.db.session(SYSTEM.scope) as s:
            return (
                await s.scalars(select(Case).join(CaseRun, CaseRun.case_id == Case.id).where(CaseRun.run_id == run_id))
            ).one()

    async def case_count(self) -> int:
        async with self.container.db.session(SYSTEM.scope) as s:
            return len((await s.scalars(select(Case))).all())


@pytest.fixture
async def desk(
    container: Container, engine: Engine, sandbox: Sandbox, sandbox_server: SandboxServer
) -> AsyncIterator[Desk]:
    partner, merchant = await new_merchant(container, "Aurora")
    yield Desk(container, engine, sandbox, sandbox_server.url, partner, merchant)


def case_summary(case: Case) -> tuple[str, str, str, str]:
    return (case.category, case.severity, case.team, case.step_path or "")


def order_lines(order: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(li["sku"], li["quantity"], li["price"]) for li in order["line_items"]]
