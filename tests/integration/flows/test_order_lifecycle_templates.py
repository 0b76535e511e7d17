"""Templates after the import, against the simulators: refund → credit memo, return / RMA, order
cancellation and edit sync, and fulfillment export (ShipStation SHIP_NOTIFY) — happy paths and every
documented failure path, for Business Central and NetSuite."""

from __future__ import annotations

from typing import Any

import pytest

from crossdock.connectors.sandbox.businesscentral_actions import ship_and_invoice
from crossdock.connectors.sandbox.shopify_fulfillment import create_refund
from crossdock.connectors.sandbox.shopify_orders import make_order

from .conftest import COMPANY, ERPS, NS_ACCOUNT, ORDER, VARIANTS, Desk, case_summary

ORDER_ID = int(ORDER["id"])
CUSTOMER = {"displayName": "Mia Smith", "email": ORDER["email"]}
NS_CUSTOMER = {"externalId": f"shopify-{ORDER['customer']['id']}", "companyName": "Mia Smith"}


def seed(desk: Desk, erp: str, *orders: dict[str, Any]) -> None:
    desk.seed_shop(*(orders or (ORDER,)))
    if erp == "businesscentral":
        desk.seed_bc(customers=[dict(CUSTOMER)])
    else:
        desk.seed_ns(customers=[dict(NS_CUSTOMER)])


def shop_refund(desk: Desk, body: dict[str, Any]) -> dict[str, Any]:
    """Refund in the Shopify simulator; the result is the refunds/create webhook body."""
    return create_refund(desk.sandbox.shopify.shop(), ORDER_ID, body)


# -- refund_to_credit_memo --------------------------------------------------------------------------
@pytest.mark.parametrize("erp", ERPS)
async def test_refund_becomes_one_credit_memo(desk: Desk, erp: str) -> None:
    seed(desk, erp)
    inst = await desk.instance("refund_to_credit_memo", {"storefront": "shopify", "erp": erp}, erp=erp)
    line = ORDER["line_items"][0]  # CD-00001-M, 43.83 less 4.39
    refund = shop_refund(desk, {"refund_line_items": [{"line_item_id": line["id"], "quantity": 1}]})

    first, status = await desk.run(inst, refund)
    again, again_status = await desk.run(inst, refund)  # a redelivery makes nothing twice

    assert (status, again_status) == ("succeeded", "succeeded")
    if erp == "businesscentral":
        [memo] = desk.bc_records("salesCreditMemos")
        lines = [(li["lineObjectNumber"], li["quantity"], li["unitPrice"]) for li in desk.bc_lines(memo["id"])]
        assert (memo["externalDocumentNumber"], memo["status"], memo["customerNumber"], lines) == (
            f"refund-{refund['id']}", "Open", desk.bc_records("customers")[0]["number"], [("CD-00001-M", 1.0, 39.44)],
        )  # fmt: skip
        expected = memo["number"]
    else:
        [memo] = desk.ns_records("creditMemo")
        lines = [(li["item"]["refName"], li["quantity"], li["rate"]) for li in memo["item"]["items"]]
        assert (memo["externalId"], memo["otherRefNum"], lines, memo["total"]) == (
            f"refund-{refund['id']}", str(ORDER_ID), [("CD-00001-M", 1.0, 39.44)], 39.44,
        )  # fmt: skip
        expected = memo["tranId"]
    assert (await desk.get_run(first)).output == {"refund": f"refund-{refund['id']}", "memo": expected}
    assert (await desk.get_run(again)).output["memo"] == expected


async def test_refund_without_lines_or_money_is_a_validation_case(desk: Desk) -> None:
    seed(desk, "businesscentral")
    inst = await desk.instance("refund_to_credit_memo", {"storefront": "shopify", "erp": "businesscentral"})

    run_id, status = await desk.run(inst, {"id": 77, "order_id": ORDER_ID, "refund_line_items": []})

    assert status == "needs_attention"
    assert case_summary(await desk.case_of(run_id)) == ("validation", "medium", "operations", "credit")
    assert desk.bc_records("salesCreditMemos") == []


@pytest.mark.parametrize("erp", ERPS)
async def test_erp_refusing_the_memo_is_a_connector_case(desk: Desk, erp: str) -> None:
    """The refunded SKU is unknown to the ERP (no sku_map entry)."""
    seed(desk, erp)
    inst = await desk.instance("refund_to_credit_memo", {"storefront": "shopify", "erp": erp}, erp=erp)
    desk.seed_erp(erp, {"OTHER": 1.0})
    refund = shop_refund(desk, {"refund_line_items": [{"line_item_id": ORDER["line_items"][0]["id"], "quantity": 1}]})
    refund["refund_line_items"][0]["line_item"]["sku"] = "NOPE-1"

    run_id, status = await desk.run(inst, refund)

    assert status == "needs_attention"
    case = await desk.case_of(run_id)
    assert (case.step_path, case.category, case.team) == ("memo", "sku_not_found", "catalog")
    assert (desk.bc_records("salesCreditMemos") if erp == "businesscentral" else desk.ns_records("creditMemo")) == []


# -- return_rma ---------------------------------------------------------------------------------------
def return_request(quantity: int = 1, unit_price: str = "39.44", return_id: str = "R-1") -> dict[str, Any]:
    line = ORDER["line_items"][0]
    return {
        "return_id": return_id, "order_id": ORDER_ID, "email": ORDER["email"], "reason": "too small",
        "lines": [{"line_item_id": line["id"], "sku": line["sku"], "quantity": quantity, "unit_price": unit_price}],
    }  # fmt: skip


def rmas(desk: Desk, erp: str) -> list[dict[str, Any]]:
    return desk.bc_records("salesCreditMemos") if erp == "businesscentral" else desk.ns_records("returnAuthorization")


def refunds(desk: Desk) -> list[tuple[str, list[tuple[int, int, str]]]]:
    order = desk.sandbox.shopify.shop().order(ORDER_ID)
    return [
        (str(sum(float(t["amount"]) for t in r["transactions"])),
         [(rl["line_item_id"], rl["quantity"], rl["restock_type"]) for rl in r["refund_line_items"]])
        for r in order["refunds"]
    ]  # fmt: skip


@pytest.mark.parametrize("erp", ERPS)
async def test_small_return_is_auto_approved_then_rma_then_refund(desk: Desk, erp: str) -> None:
    seed(desk, erp)
    inst = await desk.instance("return_rma", {"storefront": "shopify", "erp": erp}, erp=erp)

    run_id, status = await desk.run(inst, return_request())

    assert status == "succeeded", (await desk.get_run(run_id)).error
    [rma] = rmas(desk, erp)
    if erp == "businesscentral":  # API v2.0 has no return order: an unposted credit memo stands in
        assert (rma["externalDocumentNumber"], rma["status"], rma["totalAmountExcludingTax"]) == (
            "rma-R-1",
            "Draft",
            39.44,
        )
    else:
        assert (rma["externalId"], rma["otherRefNum"], rma["total"], rma["memo"]) == (
            "rma-R-1", str(ORDER_ID), 39.44, "Return R-1: too small",
        )  # fmt: skip
    assert refunds(desk) == [("39.44", [(ORDER["line_items"][0]["id"], 1, "return")])]
    assert (await desk.get_run(run_id)).output == {"return": "R-1", "amount": "39.44", "outcome": "default"}


@pytest.mark.parametrize("decision", ["approved", "rejected"])
async def test_large_return_waits_for_an_approval(desk: Desk, decision: str) -> None:
    seed(desk, "netsuite")
    inst = await desk.instance("return_rma", {"storefront": "shopify", "erp": "netsuite"}, erp="netsuite",
                               auto_approve_under="20")  # fmt: skip
    run_id = await desk.start(inst, return_request())
    assert await desk.settle() == {run_id: "waiting"}

    prompt = await desk.decide(decision)

    assert prompt == f"Return for order {ORDER_ID} worth 39.44 (too small). Approve?"
    if decision == "approved":
        assert await desk.settle() == {run_id: "succeeded"}
        assert [r["externalId"] for r in rmas(desk, "netsuite")] == ["rma-R-1"]
        assert len(refunds(desk)) == 1
    else:
        assert await desk.settle() == {run_id: "needs_attention"}
        assert case_summary(await desk.case_of(run_id)) == ("validation", "low", "operations", "outcome.rejected_case")
        assert (rmas(desk, "netsuite"), refunds(desk)) == ([], [])


async def test_return_without_lines_is_a_validation_case(desk: Desk) -> None:
    seed(desk, "businesscentral")
    inst = await desk.instance("return_rma", {"storefront": "shopify", "erp": "businesscentral"})

    run_id, status = await desk.run(inst, {**return_request(), "lines": []})

    assert status == "needs_attention"
    assert case_summary(await desk.case_of(run_id)) == ("validation", "medium", "operations", "decision")
    assert (rmas(desk, "businesscentral"), refunds(desk)) == ([], [])


async def test_erp_refusing_the_rma_is_a_connector_case_and_nothing_is_refunded(desk: Desk) -> None:
    desk.seed_shop(ORDER)
    desk.seed_ns(customers=[dict(NS_CUSTOMER)])
    inst = await desk.instance("return_rma", {"storefront": "shopify", "erp": "netsuite"}, erp="netsuite",
                               sku_map={"CD-00001-M": "GONE"})  # fmt: skip

    run_id, status = await desk.run(inst, return_request())

    assert status == "needs_attention"
    case = await desk.case_of(run_id)
    assert (case.step_path, case.category) == ("outcome.rma", "sku_not_found")
    assert (rmas(desk, "netsuite"), refunds(desk)) == ([], [])


# -- order_cancel_sync --------------------------------------------------------------------------------
async def imported(desk: Desk, erp: str) -> None:
    """Import ORDER with order_import, so the ERP holds its sales order."""
    seed(desk, erp)
    inst = await desk.instance("order_import", {"storefront": "shopify", "erp": erp}, erp=erp,
                               discount_threshold_pct="50")  # fmt: skip
    run_id, status = await desk.run(inst, ORDER)
    assert status == "succeeded", (await desk.get_run(run_id)).error


def cancelled(**changes: Any) -> dict[str, Any]:
    return {**ORDER, "cancelled_at": "2024-05-02T10:00:00Z", "cancel_reason": "customer", **changes}


@pytest.mark.parametrize("erp", ERPS)
async def test_cancellation_cancels_the_erp_order(desk: Desk, erp: str) -> None:
    await imported(desk, erp)
    inst = await desk.instance("order_cancel_sync", {"storefront": "shopify", "erp": erp}, erp=erp)

    run_id, status = await desk.run(inst, cancelled())

    assert status == "succeeded", (await desk.get_run(run_id)).error
    if erp == "businesscentral":  # API v2.0: an open order is cancelled by deleting it
        assert desk.bc_records("salesOrders") == []
    else:
        [order] = desk.ns_records("salesOrder")
        assert (order["status"]["id"], order["memo"]) == ("Closed", "Cancelled in Shopify: customer")
        assert all(li["isClosed"] for li in order["item"]["items"])
    assert (await desk.get_run(run_id)).output == {"order": str(ORDER_ID), "action": 1}


async def test_cancelling_a_shipped_order_is_a_fulfillment_case(desk: Desk) -> None:
    await imported(desk, "businesscentral")
    inst = await desk.instance("order_cancel_sync", {"storefront": "shopify", "erp": "businesscentral"})

    run_id, status = await desk.run(inst, cancelled(fulfillment_status="fulfilled"))

    assert status == "needs_attention"
    assert case_summary(await desk.case_of(run_id)) == (
        "fulfillment_state",
        "high",
        "operations",
        "route.cancel_shipped",
    )
    assert len(desk.bc_records("salesOrders")) == 1  # untouched


@pytest.mark.parametrize("erp", ERPS)
async def test_cancelling_an_order_the_erp_never_had_is_a_not_found_case(desk: Desk, erp: str) -> None:
    seed(desk, erp)
    inst = await desk.instance("order_cancel_sync", {"storefront": "shopify", "erp": erp}, erp=erp)

    run_id, status = await desk.run(inst, cancelled())

    assert status == "needs_attention"
    case = await desk.case_of(run_id)
    assert (case.category, case.step_path) == ("not_found", "route.cancel")


@pytest.mark.parametrize("erp", ERPS)
async def test_an_edit_replaces_the_erp_order_lines(desk: Desk, erp: str) -> None:
    await imported(desk, erp)
    inst = await desk.instance("order_cancel_sync", {"storefront": "shopify", "erp": erp}, erp=erp)
    edited = make_order(4, variants=VARIANTS, line_count=2)
    edited["line_items"] = edited["line_items"][:1]
    edited["line_items"][0]["quantity"] = 3
    edited["updated_at"] = "2024-05-02T09:00:00Z"

    run_id, status = await desk.run(inst, edited)

    assert status == "succeeded", (await desk.get_run(run_id)).error
    if erp == "businesscentral":
        [order] = desk.bc_records("salesOrders")
        assert [(li["lineObjectNumber"], li["quantity"]) for li in desk.bc_lines(order["id"])] == [("CD-00001-M", 3.0)]
    else:
        [order] = desk.ns_records("salesOrder")
        assert [(li["item"]["refName"], li["quantity"]) for li in order["item"]["items"]] == [("CD-00001-M", 3.0)]


# -- fulfillment_export (ShipStation) ------------------------------------------------------------------
async def ship_in_shipstation(desk: Desk, ss: str, order_key: str, tracking: str) -> str:
    """Create the ShipStation order and ship it; returns the SHIP_NOTIFY resource_url."""
    made = desk.sandbox.shipstation.upsert_order(
        {"orderNumber": "#1005", "orderKey": order_key, "orderDate": "2024-05-01T10:00:00",
         "orderStatus": "awaiting_shipment", "customerEmail": ORDER["email"],
         "billTo": {"name": "Mia Smith"}, "shipTo": {"name": "Mia Smith", "country": "US"},
         "items": [{"sku": "CD-00001-M", "name": "M", "quantity": 1}]}
    )  # fmt: skip
    shipment = desk.sandbox.shipstation.ship(made["orderId"], tracking_number=tracking)
    return f"{desk.url}/shipstation/shipments?batchId={shipment['batchNumber']}&includeShipmentItems=False"


async def fulfillment_instance(desk: Desk) -> tuple[Any, str]:
    desk.seed_shop(ORDER)
    inst = await desk.instance(
        "fulfillment_export", {"storefront": "shopify", "warehouse": "shipstation"}, source="shipstation",
        carrier_map={"ups": "UPS"},
    )  # fmt: skip
    return inst, inst.bindings["warehouse"]


async def test_ship_notify_becomes_a_shopify_fulfillment_with_tracking(desk: Desk) -> None:
    inst, ss = await fulfillment_instance(desk)
    url = await ship_in_shipstation(desk, ss, str(ORDER_ID), "1ZTRACK1")
    notify = {"resource_url": url, "resource_type": "SHIP_NOTIFY", "connection": ss}

    first, status = await desk.run(inst, notify)
    again, again_status = await desk.run(inst, notify)  # redelivered: the same fulfillment

    assert (status, again_status) == ("succeeded", "succeeded")
    order = desk.sandbox.shopify.shop().order(ORDER_ID)
    assert [(f["tracking_number"], f["tracking_company"], f["status"]) for f in order["fulfillments"]] == [
        ("1ZTRACK1", "UPS", "success")
    ]
    assert order["fulfillment_status"] == "fulfilled"
    assert (await desk.get_run(first)).output == {"fulfilled": [{"order": str(ORDER_ID), "tracking": "1ZTRACK1"}]}


async def test_shipment_of_an_order_with_nothing_left_to_fulfil_is_a_fulfillment_case(desk: Desk) -> None:
    inst, ss = await fulfillment_instance(desk)
    desk.sandbox.shopify.shop().cancel_order(ORDER_ID)  # its fulfillment orders are closed
    url = await ship_in_shipstation(desk, ss, str(ORDER_ID), "1ZTRACK1")

    run_id, status = await desk.run(inst, {"resource_url": url, "resource_type": "SHIP_NOTIFY", "connection": ss})

    assert status == "needs_attention"
    assert case_summary(await desk.case_of(run_id)) == (
        "fulfillment_state", "medium", "operations", "ship[0].fulfillment",
    )  # fmt: skip
    assert desk.sandbox.shopify.shop().order(ORDER_ID)["fulfillments"] == []


async def test_shipment_naming_no_order_is_a_validation_case(desk: Desk) -> None:
    inst, ss = await fulfillment_instance(desk)
    url = await ship_in_shipstation(desk, ss, str(ORDER_ID), "1ZTRACK1")
    desk.sandbox.shipstation.shipments[next(iter(desk.sandbox.shipstation.shipments))]["orderKey"] = None
    desk.sandbox.shipstation.shipments[next(iter(desk.sandbox.shipstation.shipments))]["orderNumber"] = None

    run_id, status = await desk.run(inst, {"resource_url": url, "resource_type": "SHIP_NOTIFY", "connection": ss})

    assert status == "needs_attention"
    assert case_summary(await desk.case_of(run_id)) == ("validation", "medium", "operations", "ship[0].shipment")
    assert desk.sandbox.shopify.shop().order(ORDER_ID)["fulfillments"] == []


# -- fulfillment_export (ERP) -------------------------------------------------------------------------
def shopify_fulfillments(desk: Desk) -> list[tuple[Any, Any, str, bool]]:
    order = desk.sandbox.shopify.shop().order(ORDER_ID)
    return [
        (f["tracking_number"], f["tracking_company"], f["status"], f["notify_customer"]) for f in order["fulfillments"]
    ]


async def test_netsuite_item_fulfillment_becomes_a_shopify_fulfillment_with_its_tracking(desk: Desk) -> None:
    await imported(desk, "netsuite")
    ns = desk.sandbox.netsuite
    [order] = desk.ns_records("salesOrder")
    ns.store.transform(
        ns.account(NS_ACCOUNT), "salesOrder", order, "itemFulfillment",
        {"shipMethod": {"id": "4", "refName": "UPS Ground"}, "package": {"items": [{"packageTrackingNumber": "1ZNS1"}]}},
    )  # fmt: skip
    inst = await desk.instance(
        "fulfillment_export", {"storefront": "shopify", "erp": "netsuite"}, source="erp", erp="netsuite",
        carrier_map={"UPS Ground": "UPS"},
    )  # fmt: skip

    first, status = await desk.run(inst, {"lookback_days": 1})
    again, again_status = await desk.run(inst, {"lookback_days": 1})  # the next scheduled run: nothing new

    assert (status, again_status) == ("succeeded", "succeeded"), (await desk.get_run(first)).error
    assert shopify_fulfillments(desk) == [("1ZNS1", "UPS", "success", True)]
    assert desk.sandbox.shopify.shop().order(ORDER_ID)["fulfillment_status"] == "fulfilled"
    output = {"fulfilled": [{"order": str(ORDER_ID), "tracking": "1ZNS1"}]}
    assert (await desk.get_run(first)).output == output
    assert (await desk.get_run(again)).output == output
    assert await desk.case_count() == 0


async def test_business_central_shipment_becomes_one_shopify_fulfillment_without_tracking(desk: Desk) -> None:
    """API v2.0 `salesShipments` carry no tracking number: the order is fulfilled (and the customer
    notified) without tracking, exactly once across scheduled runs."""
    await imported(desk, "businesscentral")
    store = desk.sandbox.businesscentral.store
    [order] = desk.bc_records("salesOrders")
    ship_and_invoice(store, store.company(COMPANY), order["id"])  # what posting in BC does
    inst = await desk.instance(
        "fulfillment_export", {"storefront": "shopify", "erp": "businesscentral"}, source="erp", erp="businesscentral"
    )

    first, status = await desk.run(inst, {"lookback_days": 1})
    again, again_status = await desk.run(inst, {"lookback_days": 1})  # the next scheduled run: nothing new

    assert (status, again_status) == ("succeeded", "succeeded"), (await desk.get_run(first)).error
    assert shopify_fulfillments(desk) == [(None, None, "success", True)]
    assert desk.sandbox.shopify.shop().order(ORDER_ID)["fulfillment_status"] == "fulfilled"
    assert (await desk.get_run(first)).output == {"fulfilled": [{"order": str(ORDER_ID), "tracking": None}]}
    assert (await desk.get_run(again)).output == {"fulfilled": [{"order": str(ORDER_ID), "tracking": None}]}
    assert await desk.case_count() == 0
