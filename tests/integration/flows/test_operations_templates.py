"""Operational templates against the simulators: inventory sync, price release, payout reconciliation,
credit-hold routing, fulfillment-delay alerts and the invoice three-way match — happy paths and every
documented failure path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from crossdock.connectors.sandbox.shopify_orders import DEFAULT_LOCATION_ID, make_order
from crossdock.core.clock import utcnow
from crossdock.engine.models import Trigger
from crossdock.engine.scheduler import Scheduler
from crossdock.flows.models import FlowInstance

from .conftest import ERPS, NS_ACCOUNT, NS_MAIN, ORDER, VARIANTS, Desk, case_summary

M, S = VARIANTS  # CD-00001-M and CD-00001-S
ITEM_MAP = {M["sku"]: M["inventory_item_id"], S["sku"]: S["inventory_item_id"]}
LOCATION_MAP = {"MAIN": DEFAULT_LOCATION_ID}


def level(desk: Desk, variant: dict[str, Any]) -> int:
    return int(desk.sandbox.shopify.shop().inventory[(variant["inventory_item_id"], DEFAULT_LOCATION_ID)]["available"])


# -- inventory_sync -------------------------------------------------------------------------------------
async def inventory_instance(desk: Desk, erp: str = "businesscentral", **overrides: Any) -> FlowInstance:
    desk.seed_shop()
    return await desk.instance(
        "inventory_sync", {"storefront": "shopify", "erp": erp}, erp=erp, item_map=ITEM_MAP,
        location_map=LOCATION_MAP, **overrides,
    )  # fmt: skip


async def test_scheduled_sync_sets_shopify_levels_from_business_central(desk: Desk) -> None:
    desk.seed_bc()
    desk.sandbox.businesscentral.set_inventory("7c9a5b1e-0000-4000-8000-0000000f1005", M["sku"], 7)
    inst = await inventory_instance(desk)

    run_id, status = await desk.run(inst, {})

    assert status == "succeeded", (await desk.get_run(run_id)).error
    assert (level(desk, M), level(desk, S)) == (7, 100)
    assert (await desk.get_run(run_id)).output == {"applied": 2, "held": 0, "unmapped": 0}


async def test_scheduled_sync_sets_shopify_levels_from_netsuite_quantities(desk: Desk) -> None:
    desk.seed_ns()
    netsuite = desk.sandbox.netsuite
    netsuite.set_item_quantity(NS_ACCOUNT, f"eid:{M['sku']}", NS_MAIN["id"], 7, on_hand=9)
    netsuite.set_item_quantity(NS_ACCOUNT, f"eid:{S['sku']}", NS_MAIN["id"], 12)
    netsuite.set_item_quantity(NS_ACCOUNT, f"eid:{S['sku']}", "2", 3, location_name="WEST")
    inst = await inventory_instance(desk, "netsuite")
    async with desk.container.db.engine.begin() as conn:  # the cron trigger is due now
        moved = await conn.execute(
            update(Trigger)
            .where(Trigger.flow_id == inst.engine_flow_id, Trigger.kind == "cron")
            .values(next_fire_at=utcnow() - timedelta(seconds=1))
        )
        assert moved.rowcount == 1
    assert await Scheduler(desk.engine).fire_cron() == 1

    [(run_id, status)] = (await desk.settle()).items()

    assert status == "succeeded", (await desk.get_run(run_id)).error
    assert (await desk.get_run(run_id)).trigger["kind"] == "cron"
    # quantityAvailable summed over the item's NetSuite locations, set at the mapped `erp_location`.
    assert (level(desk, M), level(desk, S)) == (7, 15)
    assert (await desk.get_run(run_id)).output == {"applied": 2, "held": 0, "unmapped": 0}


@pytest.mark.parametrize("erp", ERPS)
@pytest.mark.parametrize("decision", ["approved", "rejected"])
async def test_implausible_levels_are_held_for_review(desk: Desk, erp: str, decision: str) -> None:
    desk.seed_erp(erp)
    inst = await inventory_instance(desk, erp)
    before = level(desk, S)
    change = {"levels": [
        {"sku": M["sku"], "location": "MAIN", "available": 40, "previous": 50},
        {"sku": S["sku"], "location": "MAIN", "available": -3, "previous": 10},
    ]}  # fmt: skip
    run_id = await desk.start(inst, change)
    assert await desk.settle() == {run_id: "waiting"}
    assert level(desk, M) == 40  # the plausible level is applied at once

    prompt = await desk.decide(decision)

    assert prompt == f"1 implausible stock level(s) held (e.g. {S['sku']}: negative stock). Apply them?"
    if decision == "approved":
        assert await desk.settle() == {run_id: "succeeded"}
        assert level(desk, S) == 0  # a negative level is applied as zero
    else:
        assert await desk.settle() == {run_id: "needs_attention"}
        assert case_summary(await desk.case_of(run_id)) == (
            "insufficient_inventory", "medium", "operations", "hold.held_case",
        )  # fmt: skip
        assert level(desk, S) == before


async def test_unmapped_item_is_a_mapping_gap_case(desk: Desk) -> None:
    desk.seed_bc()
    inst = await inventory_instance(desk)

    run_id, status = await desk.run(inst, {"levels": [{"sku": "NEW-1", "location": "MAIN", "available": 5}]})

    assert status == "needs_attention"
    assert case_summary(await desk.case_of(run_id)) == ("mapping_gap", "low", "catalog", "gaps.unmapped_case")


# -- price_catalog_sync --------------------------------------------------------------------------------
async def price_instance(desk: Desk) -> FlowInstance:
    desk.seed_shop()
    variant_map = {M["sku"]: M["id"], S["sku"]: S["id"]}
    return await desk.instance("price_catalog_sync", {"storefront": "shopify"}, variant_map=variant_map)


def price(desk: Desk, variant: dict[str, Any]) -> str:
    return str(desk.sandbox.shopify.shop().variant(variant["id"])["price"])


async def test_small_price_change_is_released(desk: Desk) -> None:
    inst = await price_instance(desk)

    run_id, status = await desk.run(inst, {"changes": [{"sku": M["sku"], "old_price": "43.83", "new_price": "45.00"}]})

    assert status == "succeeded", (await desk.get_run(run_id)).error
    assert (price(desk, M), price(desk, S)) == ("45.00", "43.83")


@pytest.mark.parametrize("decision", ["approved", "rejected"])
async def test_large_price_change_waits_for_approval(desk: Desk, decision: str) -> None:
    inst = await price_instance(desk)
    run_id = await desk.start(inst, {"changes": [{"sku": S["sku"], "old_price": "43.83", "new_price": "20.00"}]})
    assert await desk.settle() == {run_id: "waiting"}
    assert price(desk, S) == "43.83"

    await desk.decide(decision)

    if decision == "approved":
        assert await desk.settle() == {run_id: "succeeded"}
        assert price(desk, S) == "20.00"
    else:
        assert await desk.settle() == {run_id: "needs_attention"}
        assert case_summary(await desk.case_of(run_id)) == (
            "price_mismatch",
            "medium",
            "finance",
            "outcome.rejected_case",
        )
        assert price(desk, S) == "43.83"


async def test_unmapped_price_change_is_a_mapping_gap_case(desk: Desk) -> None:
    inst = await price_instance(desk)

    run_id, status = await desk.run(inst, {"changes": [{"sku": "NEW-1", "old_price": "1.00", "new_price": "1.10"}]})

    assert status == "needs_attention"
    assert case_summary(await desk.case_of(run_id)) == ("mapping_gap", "low", "catalog", "outcome.unmapped_case")


# -- payout_reconciliation ------------------------------------------------------------------------------
@pytest.mark.parametrize("erp", ERPS)
async def test_payouts_match_the_erp_orders_of_their_day_or_raise_a_case(desk: Desk, erp: str) -> None:
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    # No tax and no shipping, so the ERP's order totals are the whole charge.
    orders = [make_order(s, variants=VARIANTS, line_count=1, created_at=today, tax_rate="0", shipping="0.00",
                         discount_percent=0) for s in (11, 12)]  # fmt: skip
    desk.seed_shop(*orders)
    desk.seed_erp(erp)
    importer = await desk.instance("order_import", {"storefront": "shopify", "erp": erp}, erp=erp)
    for order in orders[:1]:
        _run, status = await desk.run(importer, order)
        assert status == "succeeded"
    inst = await desk.instance("payout_reconciliation", {"storefront": "shopify", "erp": erp}, erp=erp)

    run_id, status = await desk.run(inst, {})  # the second order never reached the ERP

    assert status == "needs_attention", (await desk.get_run(run_id)).output
    case = await desk.case_of(run_id)
    assert case_summary(case) == ("price_mismatch", "high", "finance", "result.difference_case")
    missing = orders[1]["total_price"]
    assert case.message.startswith(f"1 payout day(s) do not reconcile; total difference {missing}")

    _run, status = await desk.run(importer, orders[1])
    assert status == "succeeded"
    balanced, status = await desk.run(inst, {})
    assert status == "succeeded"
    assert (await desk.get_run(balanced)).output["differences"] == []


# -- credit_hold_routing -------------------------------------------------------------------------------
async def credit_instance(desk: Desk, erp: str, limit: float) -> FlowInstance:
    if erp == "businesscentral":
        desk.seed_bc(customers=[{"displayName": "Mia", "email": ORDER["email"], "creditLimit": limit}])
    else:
        desk.seed_ns(customers=[{"externalId": f"shopify-{ORDER['customer']['id']}", "creditLimit": limit}])
    return await desk.instance("credit_hold_routing", {"erp": erp}, erp=erp, auto_under="50", finance_over="90")


@pytest.mark.parametrize("erp", ERPS)
async def test_within_the_limit_is_released(desk: Desk, erp: str) -> None:
    inst = await credit_instance(desk, erp, 1000.0)

    run_id, status = await desk.run(inst, ORDER)

    assert status == "succeeded"
    assert (await desk.get_run(run_id)).output == {"order": str(ORDER["id"]), "tier": "finance", "decision": "approved"}


@pytest.mark.parametrize(("decision", "status"), [("approved", "succeeded"), ("rejected", "needs_attention")])
async def test_over_the_limit_goes_to_finance_by_amount(desk: Desk, decision: str, status: str) -> None:
    inst = await credit_instance(desk, "businesscentral", 50.0)  # 93.34 > finance_over 90
    run_id = await desk.start(inst, ORDER)
    assert await desk.settle() == {run_id: "waiting"}

    prompt = await desk.decide(decision)

    assert prompt.startswith("Large B2B order #1005 (93.34) exceeds the credit limit 50.00.")
    assert await desk.settle() == {run_id: status}
    if decision == "rejected":
        assert case_summary(await desk.case_of(run_id)) == ("credit_hold", "high", "finance", "release.hold_case")
    else:
        assert (await desk.get_run(run_id)).output["decision"] == "approved"


# -- fulfillment_delay_alert ---------------------------------------------------------------------------
LATE = {"id": 1, "name": "#1001", "email": "a@example.test", "promised_at": "2024-05-01T00:00:00Z"}


async def test_a_few_late_orders_raise_no_case_but_many_do(desk: Desk) -> None:
    inst = await desk.instance("fulfillment_delay_alert", {}, case_threshold=2)
    now = "2024-05-03T00:00:00Z"

    few, few_status = await desk.run(inst, {"orders": [LATE], "now": now})
    many, many_status = await desk.run(inst, {"orders": [LATE, {**LATE, "id": 2, "name": "#1002"}], "now": now})

    assert (few_status, (await desk.get_run(few)).output) == ("succeeded", {"late": 1})
    assert many_status == "needs_attention"
    case = await desk.case_of(many)
    assert (case_summary(case), case.message) == (
        ("fulfillment_state", "medium", "operations", "escalate.late_case"), "2 orders are past their promised date.",
    )  # fmt: skip


# -- invoice_three_way_match ---------------------------------------------------------------------------
PO = {"number": "PO-1", "lines": [{"sku": "A", "quantity": 10, "unit_price": "5.00"}]}
RECEIPT = {"lines": [{"sku": "A", "quantity": 8}]}


@pytest.mark.parametrize("decision", ["approved", "rejected"])
async def test_a_matching_invoice_passes_and_a_mismatch_is_a_finance_case(desk: Desk, decision: str) -> None:
    inst = await desk.instance("invoice_three_way_match", {})
    good = {"number": "INV-1", "vendor": "Acme", "lines": [{"sku": "A", "quantity": 8, "unit_price": "5.00"}]}
    bad = {**good, "number": "INV-2", "lines": [{"sku": "A", "quantity": 10, "unit_price": "5.00"}]}

    ok, ok_status = await desk.run(inst, {"po": PO, "receipt": RECEIPT, "invoice": good})
    off, off_status = await desk.run(inst, {"po": PO, "receipt": RECEIPT, "invoice": bad})

    assert (ok_status, (await desk.get_run(ok)).output["matched"]) == ("succeeded", True)
    assert off_status == "waiting", (await desk.get_run(off)).output  # finance decides the vendor claim first
    assert await desk.decide(decision) == "Claim 10.00 from Acme for invoice INV-2?"
    assert await desk.settle() == {ok: "succeeded", off: "needs_attention"}
    case = await desk.case_of(off)
    assert (case_summary(case), case.message) == (
        ("price_mismatch", "high", "finance", "mismatch.mismatch_case"),
        f"Invoice INV-2 does not match PO PO-1: claim 10.00 (1 line(s)); claim {decision}.",
    )
