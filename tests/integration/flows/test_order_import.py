"""order_import through the real engine against the simulators, for Business Central and NetSuite:
the happy path (idempotent under redelivery), every documented failure path, SKU fix + replay, and
credit/discount approvals continuing or stopping the run."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from crossdock.connectors.sandbox.shopify_orders import make_order
from crossdock.engine import service as engine_service
from crossdock.engine.models import Wait
from crossdock.engine.scheduler import Scheduler
from crossdock.flows import service
from crossdock.flows.models import FlowInstance
from crossdock.flows.schemas import InstanceUpdate
from tests.integration.engine.conftest import wait_until

from .conftest import COMPANY, ERPS, ORDER, SYSTEM, VARIANTS, Desk, case_summary

ORDER_ID = str(ORDER["id"])  # 5100000000004, #1005: two lines of 43.83, 10% discount, subtotal 78.89
CUSTOMER_EID = f"shopify-{ORDER['customer']['id']}"


async def import_instance(desk: Desk, erp: str, **overrides: Any) -> FlowInstance:
    desk.seed_shop(ORDER)
    overrides.setdefault("discount_threshold_pct", "50")
    return await desk.instance("order_import", {"storefront": "shopify", "erp": erp}, erp=erp, **overrides)


def erp_orders(desk: Desk, erp: str) -> list[dict[str, Any]]:
    return desk.bc_records("salesOrders") if erp == "businesscentral" else desk.ns_records("salesOrder")


def erp_order_summary(desk: Desk, erp: str) -> tuple[str, list[tuple[str, float, float]], float]:
    """(external id, [(item, quantity, net amount)], total before tax) of the one ERP order."""
    [order] = erp_orders(desk, erp)
    if erp == "businesscentral":
        lines = [(li["lineObjectNumber"], li["quantity"], li["netAmount"]) for li in desk.bc_lines(order["id"])]
        return order["externalDocumentNumber"], lines, order["totalAmountExcludingTax"]
    lines = [(li["item"]["refName"], li["quantity"], li["amount"]) for li in order["item"]["items"]]
    return order["externalId"], lines, order["total"]


def writeback(desk: Desk) -> list[dict[str, Any]]:
    return desk.sandbox.shopify.shop().order(int(ORDER_ID))["note_attributes"]


@pytest.mark.parametrize("erp", ERPS)
async def test_happy_path_creates_the_erp_order_once_and_writes_its_number_back(desk: Desk, erp: str) -> None:
    desk.seed_erp(erp)
    inst = await import_instance(desk, erp)

    first = await desk.start(inst, ORDER)
    again = await desk.start(inst, ORDER)  # a redelivery under another run
    assert await desk.settle() == {first: "succeeded", again: "succeeded"}

    number = "S-ORD101001" if erp == "businesscentral" else "SO1001"
    assert (await desk.get_run(first)).output == {"order": ORDER_ID, "erp_order": number, "held": False}
    assert (await desk.get_run(again)).output["erp_order"] == number
    # 43.83 each less the 10% discount allocated 4.39 / 4.38: exactly Shopify's subtotal_price of 78.89.
    assert erp_order_summary(desk, erp) == (ORDER_ID, [("CD-00001-M", 1.0, 39.44), ("CD-00001-S", 1.0, 39.45)], 78.89)
    assert writeback(desk) == [{"name": "erp_order_number", "value": number}]
    if erp == "businesscentral":
        [customer] = desk.bc_records("customers")
        assert (customer["email"], customer["city"]) == (ORDER["email"], ORDER["shipping_address"]["city"])
    else:
        [customer] = desk.ns_records("customer")
        assert (customer["externalId"], customer["email"]) == (CUSTOMER_EID, ORDER["email"])
    assert await desk.case_count() == 0


@pytest.mark.parametrize("erp", ERPS)
async def test_unknown_sku_is_a_case_and_fixing_the_sku_map_and_replaying_completes(desk: Desk, erp: str) -> None:
    desk.seed_erp(erp, {"1000": 43.83, "1001": 43.83})
    inst = await import_instance(desk, erp, sku_map={"CD-00001-M": "1000"})

    run_id, status = await desk.run(inst, ORDER)

    assert status == "needs_attention"
    run = await desk.get_run(run_id)
    assert (run.error["category"], run.error["step"], run.error["kind"]) == ("sku_not_found", "validate_skus", "data")
    assert run.error["message"].startswith("SKU(s) not found in the ERP: CD-00001-S.")
    assert case_summary(await desk.case_of(run_id)) == ("sku_not_found", "medium", "catalog", "validate_skus")
    assert erp_orders(desk, erp) == []

    async with desk.container.db.session(SYSTEM.scope) as s:
        fixed = InstanceUpdate(
            overrides={
                "erp": erp,
                "sku_map": {"CD-00001-M": "1000", "CD-00001-S": "1001"},
                "discount_threshold_pct": "50",
            }
        )
        await service.update_instance(s, SYSTEM, desk.engine, inst.id, fixed)
    async with desk.container.db.session(SYSTEM.scope) as s:
        await engine_service.replay_run(s, SYSTEM, run_id, "skus")

    assert await desk.settle() == {run_id: "succeeded"}, (await desk.get_run(run_id)).error
    assert (await desk.get_run(run_id)).version_id == run.version_id  # still its pinned version
    assert [line[0] for line in erp_order_summary(desk, erp)[1]] == ["1000", "1001"]
    assert (await desk.case_of(run_id)).state == "resolved"  # the desk auto-resolves a case whose run succeeded


def broken(**changes: Any) -> dict[str, Any]:
    order = make_order(4, variants=VARIANTS, line_count=2)
    for path, value in changes.items():
        target: Any = order
        *parents, leaf = path.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[leaf] = value
    return order


@pytest.mark.parametrize(
    ("order", "category", "step", "team", "message"),
    [
        (
            broken(**{"line_items.0.price": "50.00", "total_price": None}),
            "price_mismatch", "prices", "finance", "Price differs from the ERP by more than 1.0%: CD-00001-M: 50.00 vs ERP 43.83 (14.08%).",
        ),
        (broken(total_tax="9.99"), "validation", "tax", "operations", "Order #1005: line taxes 6.50 ≠ order tax 9.99."),
        (
            broken(**{"shipping_address.zip": ""}),
            "address_validation", "address", "operations", "Ship-to address: zip is missing.",
        ),
    ],
    ids=["price_mismatch", "tax", "address"],
)  # fmt: skip
async def test_data_checks_raise_their_case_and_nothing_reaches_the_erp(
    desk: Desk, order: dict[str, Any], category: str, step: str, team: str, message: str
) -> None:
    desk.seed_erp("businesscentral")
    if order["total_price"] is None:  # keep the order's own sums consistent: only the price is off
        order["total_price"] = ORDER["total_price"]
    inst = await import_instance(desk, "businesscentral")

    run_id, status = await desk.run(inst, order)

    assert status == "needs_attention"
    case = await desk.case_of(run_id)
    assert (case.category, case.team, case.step_path) == (category, team, step)
    assert (await desk.get_run(run_id)).error["message"].startswith(message)
    assert erp_orders(desk, "businesscentral") == []
    assert writeback(desk) == []


def seed_credit_customer(desk: Desk, erp: str) -> None:
    """Mia in the ERP with a 100.00 credit limit and 10.00 already owed (order #1005 takes her over)."""
    if erp == "businesscentral":
        desk.seed_bc(
            customers=[{"displayName": "Mia", "email": ORDER["email"], "creditLimit": 100.0, "balanceDue": 10.0}]
        )
    else:
        desk.seed_ns(customers=[{"externalId": CUSTOMER_EID, "companyName": "Mia", "creditLimit": 100, "balance": 10}])


@pytest.mark.parametrize("erp", ERPS)
async def test_credit_over_limit_waits_and_a_rejection_holds_the_order(desk: Desk, erp: str) -> None:
    seed_credit_customer(desk, erp)
    inst = await import_instance(desk, erp)
    run_id = await desk.start(inst, ORDER)

    assert await desk.settle() == {run_id: "waiting"}
    assert await desk.open_approvals() == [
        "Order #1005 (93.34 USD) takes Mia Smith to 103.34, over the credit limit of 100.00. Release it?"
    ]
    await desk.decide("rejected")

    assert await desk.settle() == {run_id: "needs_attention"}
    case = await desk.case_of(run_id)
    assert (case.category, case.severity, case.step_path, case.team) == (
        "credit_hold", "high", "decide.credit_hold", "finance",
    )  # fmt: skip
    assert case.message == "Order #1005 is held: 103.34 exceeds the credit limit 100.00 and was not released."
    assert erp_orders(desk, erp) == []  # nothing reached the ERP
    assert writeback(desk) == []


@pytest.mark.parametrize("erp", ERPS)
async def test_a_credit_approval_that_times_out_holds_the_order(desk: Desk, erp: str) -> None:
    seed_credit_customer(desk, erp)
    inst = await import_instance(desk, erp, approval_timeout_s=1)
    run_id = await desk.start(inst, ORDER)
    assert await desk.settle() == {run_id: "waiting"}
    assert len(await desk.open_approvals()) == 1

    # Nobody decides: once the timeout is due, the scheduler wakes the run (as in production).
    scheduler = Scheduler(desk.engine)

    async def woken() -> bool:
        return (await scheduler.tick())["woken"] == 1

    await wait_until(woken, timeout=5.0, interval=0.05)
    assert await desk.settle() == {run_id: "needs_attention"}

    async with desk.container.db.session(SYSTEM.scope) as s:
        [wait] = (await s.scalars(select(Wait).where(Wait.run_id == run_id))).all()
    assert (wait.kind, wait.status) == ("approval", "timed_out")
    assert await desk.open_approvals() == []
    case = await desk.case_of(run_id)
    assert (case.category, case.severity, case.step_path, case.team) == (
        "credit_hold", "high", "decide.credit_hold", "finance",
    )  # fmt: skip
    assert case.message == "Order #1005 is held: 103.34 exceeds the credit limit 100.00 and was not released."
    assert erp_orders(desk, erp) == []  # nothing reached the ERP
    assert writeback(desk) == []


async def test_approved_credit_continues_to_the_erp(desk: Desk) -> None:
    seed_credit_customer(desk, "netsuite")
    desk.sandbox.netsuite.configure(enforce_holds=False)  # the ERP's own hold is another test
    try:
        inst = await import_instance(desk, "netsuite")
        run_id = await desk.start(inst, ORDER)
        assert await desk.settle() == {run_id: "waiting"}

        await desk.decide("approved")

        assert await desk.settle() == {run_id: "succeeded"}
    finally:
        desk.sandbox.netsuite.configure(enforce_holds=True)
    assert [o["externalId"] for o in erp_orders(desk, "netsuite")] == [ORDER_ID]


@pytest.mark.parametrize("decision", ["approved", "rejected"])
async def test_discount_above_threshold_needs_an_approval(desk: Desk, decision: str) -> None:
    desk.seed_bc()
    inst = await import_instance(desk, "businesscentral", discount_threshold_pct="5")
    run_id = await desk.start(inst, ORDER)
    assert await desk.settle() == {run_id: "waiting"}

    prompt = await desk.decide(decision)

    assert prompt == "Order #1005 has a 10.00% discount (8.77), above the 5% threshold. Import it?"
    if decision == "approved":
        assert await desk.settle() == {run_id: "succeeded"}
        assert [o["externalDocumentNumber"] for o in erp_orders(desk, "businesscentral")] == [ORDER_ID]
    else:
        assert await desk.settle() == {run_id: "needs_attention"}
        assert case_summary(await desk.case_of(run_id)) == (
            "discount_anomaly", "medium", "finance", "decide.discount_hold",
        )  # fmt: skip
        assert erp_orders(desk, "businesscentral") == []


@pytest.mark.parametrize("erp", ERPS)
async def test_the_erps_own_refusal_is_a_connector_case(desk: Desk, erp: str) -> None:
    """Business Central refuses an order it cannot ship (insufficient_inventory), NetSuite a credit hold."""
    if erp == "businesscentral":
        desk.seed_bc()
        desk.sandbox.businesscentral.set_inventory(COMPANY, "CD-00001-M", 0)
        expected = ("insufficient_inventory", "operations")
    else:
        desk.seed_ns(customers=[{"externalId": CUSTOMER_EID, "companyName": "Mia", "creditLimit": 50}])
        expected = ("credit_hold", "finance")
    # The flow's own credit check sees NetSuite's limit too: approve it, and NetSuite still refuses.
    inst = await import_instance(desk, erp)

    run_id = await desk.start(inst, ORDER)
    if erp == "netsuite":
        assert await desk.settle() == {run_id: "waiting"}
        await desk.decide("approved")
    assert await desk.settle() == {run_id: "needs_attention"}

    case = await desk.case_of(run_id)
    assert (case.category, case.team, case.step_path) == (*expected, "decide.sales_order")
    assert erp_orders(desk, erp) == []
