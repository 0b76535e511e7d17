"""The living demo end to end: 500 orders with injected problems through both merchants' real flows.

Everything is real except the vendors: the API and the webhook intake on a real port, the engine
runtime embedded beside it, the simulators on another real port, the demo's connections, instances,
teams and routing rules, and the traffic generator posting signed Shopify webhooks. Then people act
through the API: they fix the SKU map and replay the cases, approve and reject the holds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.cases.models import Case, CaseRun
from crossdock.connectors.actions import RateBudget, register_connector_actions
from crossdock.connectors.sandbox.serve import free_port, serve_in_thread
from crossdock.connectors.sandbox.server import Sandbox, create_sandbox_app
from crossdock.connectors.sandbox.shopify_state import ShopifySimulator
from crossdock.core.context import Actor
from crossdock.core.settings import Settings
from crossdock.demo import sandbox as sb
from crossdock.demo.orders import APPROVAL_PROBLEMS, OrderPlan
from crossdock.demo.provision import DemoWorld, provision
from crossdock.demo.runner import _QuietServer
from crossdock.demo.seed import seed_demo
from crossdock.demo.traffic import TrafficConfig, TrafficGenerator
from crossdock.engine.core import engine_of
from crossdock.engine.models import Run
from crossdock.engine.runtime import start_embedded, stop_embedded
from crossdock.web.app import create_app

pytestmark = pytest.mark.slow
ORDERS = 500
SYSTEM = Actor.system()
FAST = RateBudget(1000.0, 1000.0)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.worker.embedded_workers = 2
    settings.worker.case_sweep_seconds = 0.5
    settings.worker.merchant_concurrency = 32
    return settings


@dataclass
class Stack:
    container: Container
    world: DemoWorld
    sandbox: Sandbox
    catalog: sb.DemoCatalog
    api: httpx.AsyncClient  # as the partner's operator: cases and approvals
    admin: httpx.AsyncClient  # as the partner's admin: instance configuration


@pytest.fixture
async def stack(container: Container) -> AsyncIterator[Stack]:
    # A Shopify Plus-sized bucket and generous budgets: the test measures correctness, not pacing.
    sandbox = Sandbox(shopify=ShopifySimulator(rest_capacity=2000, rest_leak_rate=1000.0))
    with serve_in_thread(create_sandbox_app(sandbox)) as sandbox_server:
        catalog = sb.seed_sandbox(sandbox)
        tenants = await seed_demo(container)
        port = free_port()
        api_url = f"http://127.0.0.1:{port}"
        world = await provision(container, tenants, catalog=catalog, sandbox_url=sandbox_server.url, api_url=api_url)
        assert world.flows["aurora"]["order_import"] and world.flows["cobalt"]["order_import"]
        engine = engine_of(container)
        budgets = {s: FAST for s in ("shopify", "businesscentral", "netsuite", "shipstation")}
        register_connector_actions(engine, container, budgets=budgets)
        app = create_app(container, on_startup=[start_embedded], on_shutdown=[stop_embedded])
        server = _QuietServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            assert not task.done(), task.result()
            await asyncio.sleep(0.02)

        def client(role: str) -> httpx.AsyncClient:
            headers = {"Authorization": f"Bearer {tenants.tokens[role]}"}
            return httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30)

        async with client("partner_operator") as api, client("partner_admin") as admin:
            try:
                yield Stack(container, world, sandbox, catalog, api, admin)
            finally:
                server.should_exit = True
                await asyncio.wait_for(task, timeout=30)


# -- reading the outcome --------------------------------------------------------------------------
async def order_runs(stack: Stack) -> dict[str, Run]:
    """The order_import run of each Shopify order id (asserting there is only one per order)."""
    flows = {stack.world.flows[m]["order_import"] for m in ("aurora", "cobalt")}
    async with stack.container.db.session(SYSTEM.scope) as s:
        runs = (await s.scalars(select(Run).where(Run.flow_id.in_(flows)))).all()
    ids = Counter(str(r.input["id"]) for r in runs)
    assert [i for i, n in ids.items() if n > 1] == []  # a duplicate delivery never starts a second run
    return {str(r.input["id"]): r for r in runs}


async def settle(stack: Stack, expected_runs: int, timeout: float = 150) -> dict[str, Run]:
    """Wait until every order run is at rest and every run needing attention is linked to a case."""
    deadline = time.monotonic() + timeout
    while True:
        runs = await order_runs(stack)
        busy = [r.id for r in runs.values() if r.status in ("queued", "running")]
        failed = {r.id for r in runs.values() if r.status == "needs_attention"}
        async with stack.container.db.session(SYSTEM.scope) as s:
            linked = set((await s.scalars(select(CaseRun.run_id).where(CaseRun.run_id.in_(failed)))).all())
        if len(runs) == expected_runs and not busy and failed <= linked:
            return runs
        assert time.monotonic() < deadline, f"not settled: {len(runs)} runs, {len(busy)} busy, {failed - linked}"
        await asyncio.sleep(0.5)


async def case_of(stack: Stack, run_id: str) -> Case:
    async with stack.container.db.session(SYSTEM.scope) as s:
        return (
            await s.scalars(select(Case).join(CaseRun, CaseRun.case_id == Case.id).where(CaseRun.run_id == run_id))
        ).one()


def expected_lines(plan: OrderPlan) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """(ERP item, quantity, unit price, line discount) as the order says, legacy SKUs mapped."""
    fix = plan.sku_fix()
    return sorted(
        (
            fix.get(li["sku"], li["sku"]),
            Decimal(li["quantity"]),
            Decimal(li["price"]),
            sum((Decimal(a["amount"]) for a in li["discount_allocations"]), Decimal(0)),
        )
        for li in plan.order["line_items"]
    )


def erp_orders(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """Every sales order in both ERP simulators, by Shopify order id."""
    found: dict[str, list[dict[str, Any]]] = {}
    for so in stack.sandbox.businesscentral.records(sb.BC_COMPANY_ID, "salesOrders"):
        found.setdefault(str(so["externalDocumentNumber"]), []).append({"erp": "businesscentral", **so})
    for so in stack.sandbox.netsuite.records(sb.NS_ACCOUNT, "salesOrder"):
        found.setdefault(str(so["externalId"]), []).append({"erp": "netsuite", **so})
    return found


def assert_in_erp_once(stack: Stack, plan: OrderPlan, orders: dict[str, list[dict[str, Any]]]) -> None:
    docs = orders.get(plan.order_id, [])
    assert len(docs) == 1, (plan.order_id, plan.problem, len(docs))
    doc = docs[0]
    subtotal = Decimal(plan.order["subtotal_price"])
    if plan.merchant == "aurora":
        assert doc["erp"] == "businesscentral"
        store = stack.sandbox.businesscentral.store
        lines = store.doc_lines(store.company(sb.BC_COMPANY_ID), doc["id"])
        got = sorted(
            (ln["lineObjectNumber"], Decimal(str(ln["quantity"])), Decimal(str(ln["unitPrice"])).quantize(Decimal("0.01")),
             Decimal(str(ln["discountAmount"])).quantize(Decimal("0.01")))
            for ln in lines
        )  # fmt: skip
        assert got == expected_lines(plan), plan.order_id
        assert Decimal(str(doc["totalAmountExcludingTax"])).quantize(Decimal("0.01")) == subtotal
    else:
        assert doc["erp"] == "netsuite"
        items = doc["item"]["items"]
        got_skus = sorted((str(i["item"]["refName"]), Decimal(str(i["quantity"]))) for i in items)
        assert got_skus == [(sku, qty) for sku, qty, _p, _d in expected_lines(plan)], plan.order_id
        assert Decimal(str(doc["total"])).quantize(Decimal("0.01")) == subtotal, plan.order_id


async def decide(stack: Stack, run: Run, decision: str) -> None:
    waits = (await stack.api.get("/v1/waits", params={"status": "open", "limit": 200})).json()["items"]
    [wait] = [w for w in waits if w["run_id"] == run.id and w["kind"] == "approval"]
    resp = await stack.api.post(
        f"/v1/approvals/{wait['id']}/decide", json={"decision": decision, "idempotency_key": f"t-{wait['id']}"}
    )
    assert resp.status_code == 200, resp.text


# -- the test -------------------------------------------------------------------------------------
async def test_five_hundred_orders_with_problems_through_both_merchants(stack: Stack) -> None:
    config = TrafficConfig(
        rate=60, seed=11, max_orders=ORDERS, problem_rate=0.08, duplicate_rate=0.05, burst_chance=0.0,
        side_traffic=False, concurrency=32,
    )  # fmt: skip
    generator = TrafficGenerator(stack.world, stack.sandbox, stack.catalog, config)
    await generator.run()
    plans = {p.order_id: p for p in generator.plans}
    assert generator.stats.orders_sent == ORDERS and generator.stats.delivery_failures == 0
    problems = Counter(p.problem for p in plans.values() if p.problem)
    assert 0.03 * ORDERS <= sum(problems.values()) <= 0.1 * ORDERS, problems
    assert set(problems) >= {"unknown_sku", "price_mismatch", "discount_abuse"}, problems
    assert sum(p.duplicate for p in plans.values()) > 0

    runs = await settle(stack, ORDERS)

    # Valid orders: in the right ERP exactly once, with the order's lines and totals.
    erp = erp_orders(stack)
    for plan in plans.values():
        run = runs[plan.order_id]
        if plan.reaches_erp:
            assert run.status == "succeeded", (plan.order_id, plan.problem, run.error)
            assert_in_erp_once(stack, plan, erp)
        else:
            assert plan.order_id not in erp, (plan.order_id, plan.problem)
    # Every injected problem: a case of the right category and team, or an approval waiting.
    for plan in plans.values():
        run = runs[plan.order_id]
        if plan.problem in APPROVAL_PROBLEMS:
            assert run.status == "waiting", (plan.order_id, plan.problem, run.status, run.error)
        elif plan.problem and plan.problem != "throttling":
            assert run.status == "needs_attention", (plan.order_id, plan.problem, run.status)
            case = await case_of(stack, run.id)
            assert (case.category, case.team) == (plan.expected_category, plan.expected_team), plan.order_id

    # Fixing the SKU map and replaying the case completes the order.
    for merchant in ("aurora", "cobalt"):
        unknown = [p for p in plans.values() if p.merchant == merchant and p.problem == "unknown_sku"]
        if not unknown:
            continue
        instance_id = stack.world.instances[merchant]["order_import"]
        current = (await stack.admin.get(f"/v1/flow-instances/{instance_id}")).json()["overrides"]
        fix = {k: v for p in unknown for k, v in p.sku_fix().items()}
        patched = await stack.admin.patch(
            f"/v1/flow-instances/{instance_id}", json={"overrides": {**current, "sku_map": fix}}
        )
        assert patched.status_code == 200, patched.text
        for plan in unknown:
            run = runs[plan.order_id]
            case = await case_of(stack, run.id)
            resp = await stack.api.post(
                f"/v1/cases/{case.id}/replay", json={"payload": run.input, "run_id": run.id, "from_step": "skus"}
            )
            assert resp.status_code == 200, resp.text

    # Approving continues the run to the ERP; rejecting stops it with a routed case.
    approvals = sorted((p for p in plans.values() if p.problem in APPROVAL_PROBLEMS), key=lambda p: p.index)
    decisions = {p.order_id: ("approved" if i % 2 == 0 else "rejected") for i, p in enumerate(approvals)}
    for plan in approvals:
        await decide(stack, runs[plan.order_id], decisions[plan.order_id])

    runs = await settle(stack, ORDERS)
    erp = erp_orders(stack)
    for plan in plans.values():
        run = runs[plan.order_id]
        if plan.problem == "unknown_sku" or decisions.get(plan.order_id) == "approved":
            assert run.status == "succeeded", (plan.order_id, plan.problem, run.error)
            assert_in_erp_once(stack, plan, erp)
        elif decisions.get(plan.order_id) == "rejected":
            assert run.status == "needs_attention", (plan.order_id, plan.problem, run.status)
            case = await case_of(stack, run.id)
            assert (case.category, case.team) == (plan.expected_category, plan.expected_team), plan.order_id
            assert plan.order_id not in erp
    fixed = [runs[p.order_id].id for p in plans.values() if p.problem == "unknown_sku"]
    deadline = time.monotonic() + 30
    while (states := {(await case_of(stack, run_id)).state for run_id in fixed}) - {"resolved"}:
        # the exception desk's sweep resolves a case once all its runs succeeded
        assert time.monotonic() < deadline, states
        await asyncio.sleep(0.5)
    # Nothing twice, nothing extra: the ERPs hold exactly the orders that should be there.
    should = {
        p.order_id for p in plans.values()
        if p.reaches_erp or p.problem == "unknown_sku" or decisions.get(p.order_id) == "approved"
    }  # fmt: skip
    assert set(erp) == should and all(len(docs) == 1 for docs in erp.values())
