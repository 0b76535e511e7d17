"""Operational checks and reconciliation: inventory, prices, returns, refunds, shipments, payouts, 3-way."""

from __future__ import annotations

import pytest

from crossdock.engine.actions import StepFailed
from crossdock.flows import checks, reconcile

MAPS = {"item_map": {"1000": 11, "1001": 12, "1002": 13}, "location_map": {"MAIN": 99}}


def test_inventory_holds_negative_and_large_drops_and_reports_unmapped() -> None:
    levels = [
        {"sku": "1000", "location": "MAIN", "available": 40, "previous": 50},
        {"sku": "1001", "location": "MAIN", "available": 4, "previous": 10},
        {"sku": "1002", "location": "MAIN", "available": -2},
        {"sku": "9999", "location": "MAIN", "available": 5},
    ]
    out = checks.inventory_plausibility({"levels": levels, "max_drop_pct": "50", **MAPS})
    assert [(r["sku"], r["inventory_item_id"], r["location_id"], r["available"]) for r in out["apply"]] == [
        ("1000", 11, 99, 40)
    ]
    assert [(r["sku"], r["reason"]) for r in out["held"]] == [
        ("1001", "drop of 60.00% (limit 50%)"),
        ("1002", "negative stock"),
    ]
    assert [r["sku"] for r in out["unmapped"]] == ["9999"]
    assert out["needs_review"] is True


def test_price_changes_over_the_limit_are_held_until_approved() -> None:
    changes = [
        {"sku": "A", "old_price": "10.00", "new_price": "11.00"},
        {"sku": "B", "old_price": "10.00", "new_price": "12.01"},
        {"sku": "C", "old_price": "10.00", "new_price": "10.00"},
        {"sku": "D", "old_price": "10.00", "new_price": "0"},
        {"sku": "E", "old_price": "1", "new_price": "2"},
    ]
    out = checks.price_changes(
        {"changes": changes, "max_change_pct": "20", "variant_map": {k: i for i, k in enumerate("ABCD")}}
    )
    assert [(r["sku"], r["change_pct"]) for r in out["release"]] == [("A", "10.00")]
    assert [(r["sku"], r["change_pct"]) for r in out["held"]] == [("B", "20.10"), ("D", "-100.00")]
    assert [r["sku"] for r in out["unmapped"]] == ["E"]
    approved = checks.approve_held({**out, "decision": {"decision": "approved"}})
    assert [r["sku"] for r in approved["release"]] == ["A", "B", "D"] and approved["rejected"] == []
    rejected = checks.approve_held({**out, "decision": {"decision": "rejected"}})
    assert [r["sku"] for r in rejected["release"]] == ["A"] and [r["sku"] for r in rejected["rejected"]] == ["B", "D"]
    timed_out = checks.approve_held({**out, "decision": {"timed_out": True}})
    assert [r["sku"] for r in timed_out["rejected"]] == ["B", "D"]


def test_route_by_amount_tiers() -> None:
    tiers = {"auto_under": "500", "finance_over": "10000"}
    assert [checks.route_by_amount({"amount": a, **tiers})["tier"] for a in ("499.99", "500", "10000", "10000.01")] == [
        "auto",
        "manager",
        "manager",
        "finance",
    ]


def test_rma_auto_approves_under_the_threshold() -> None:
    lines = [{"sku": "A", "quantity": 2, "unit_price": "24.99"}]
    assert checks.rma_decision({"lines": lines, "auto_approve_under": "50"}) == {
        "amount": "49.98",
        "auto_approved": True,
        "needs_approval": False,
    }
    assert checks.rma_decision({"lines": lines, "auto_approve_under": "49.98"})["needs_approval"] is True
    with pytest.raises(StepFailed) as exc:
        checks.rma_decision({"lines": [{"sku": "A", "quantity": 0, "unit_price": "1"}]})
    assert (exc.value.category, str(exc.value)) == ("validation", "Return line 0 has quantity 0; it must be positive.")


def test_refund_maps_to_credit_memo_bodies() -> None:
    refund = {
        "id": 77,
        "order_id": 5100000000004,
        "refund_line_items": [{"quantity": 2, "subtotal": 78.88, "total_tax": 6.5, "line_item": {"sku": "CD-1"}}],
        "transactions": [{"amount": "85.38"}],
    }
    credit = checks.map_refund({"refund": refund, "sku_map": {"CD-1": "1000"}})
    assert credit == {
        "external_id": "refund-77",
        "order_external_id": "5100000000004",
        "lines": [{"sku": "1000", "quantity": 2, "unit_price": "39.44", "amount": "78.88"}],
        "subtotal": "78.88",
        "tax": "6.50",
        "refunded": "85.38",
    }
    bc = checks.to_businesscentral_credit_memo({"credit": credit, "customer_number": "C1"})
    assert bc == {
        "external_document_number": "refund-77",
        "customer_number": "C1",
        "lines": [{"item_number": "1000", "quantity": 2.0, "unit_price": 39.44}],
    }
    ns = checks.to_netsuite_credit_memo({"credit": credit, "customer_external_id": "shopify-1"})
    assert (ns["external_id"], ns["customer"], ns["other_ref_num"], ns["lines"]) == (
        "refund-77",
        {"external_id": "shopify-1"},
        "5100000000004",
        [{"item": {"external_id": "1000"}, "quantity": 2.0, "rate": 39.44}],
    )
    with pytest.raises(StepFailed):
        checks.map_refund({"refund": {"id": 1}})


def test_shipments_from_erp_or_shipstation() -> None:
    bc = checks.map_shipment(
        {
            "shipment": {"externalDocumentNumber": "5100", "trackingNumber": "1Z9", "shippingAgentCode": "UPS"},
            "carrier_map": {"UPS": "UPS Ground"},
            "tracking_url_template": "https://t/{tracking}",
        }
    )
    assert bc == {
        "order_id": "5100",
        "tracking_number": "1Z9",
        "carrier": "UPS Ground",
        "tracking_url": "https://t/1Z9",
        "shipped_at": None,
    }
    ss = checks.map_shipment(
        {"shipment": {"orderKey": "5101", "trackingNumber": "94001", "carrierCode": "usps", "shipDate": "2025-01-07"}}
    )
    assert (ss["order_id"], ss["carrier"], ss["tracking_url"], ss["shipped_at"]) == ("5101", "usps", None, "2025-01-07")
    with pytest.raises(StepFailed) as exc:
        checks.map_shipment({"shipment": {"orderKey": "5102"}})
    assert exc.value.category == "fulfillment_state"


def test_fulfillment_delays_after_grace_most_late_first() -> None:
    orders = [
        {"id": 1, "name": "#1", "promised_at": "2025-01-06T00:00:00Z"},
        {"id": 2, "name": "#2", "promised_at": "2025-01-07T08:00:00+00:00"},
        {"id": 3, "name": "#3", "promised_at": "2025-01-05T00:00:00Z", "fulfillment_status": "fulfilled"},
        {"id": 4, "name": "#4", "promised_at": "2025-01-07T09:00:00Z"},
    ]
    out = checks.fulfillment_delays({"orders": orders, "now": "2025-01-07T12:00:00Z", "grace_hours": "3"})
    assert [(o["order_id"], o["hours_late"]) for o in out["late"]] == [("1", 36.0), ("2", 4.0)]
    assert (out["count"], out["any"]) == (2, True)


def test_payouts_match_erp_days_and_flag_differences() -> None:
    payouts = {
        "payouts": [
            {
                "id": 1,
                "date": "2025-01-06",
                "amount": "95.00",
                "summary": {
                    "charges_gross_amount": "100.00",
                    "charges_fee_amount": "5.00",
                    "refunds_gross_amount": "0.00",
                },
            },
            {
                "id": 2,
                "date": "2025-01-07",
                "amount": "190.00",
                "summary": {
                    "charges_gross_amount": "200.00",
                    "charges_fee_amount": "10.00",
                    "refunds_gross_amount": "-20.00",
                },
            },
        ]
    }
    docs = [
        {"date": "2025-01-06", "total": "60.00"},
        {"date": "2025-01-06", "total": "40.03"},
        {"date": "2025-01-07", "total": "200.00"},
        {"date": "2025-01-07", "total": "20.00", "type": "refund"},
        {"date": "2025-01-08", "total": "50.00"},
    ]
    out = reconcile.match_payouts({"payouts": payouts, "erp_documents": docs, "tolerance": "0.05"})
    assert [(m["date"], m["difference"]) for m in out["matched"]] == [("2025-01-06", "-0.03"), ("2025-01-07", "0.00")]
    assert [(d["date"], d["payout_id"], d["difference"]) for d in out["differences"]] == [
        ("2025-01-08", None, "-50.00")
    ]
    assert (out["balanced"], out["total_difference"]) == (False, "-50.00")
    strict = reconcile.match_payouts({"payouts": payouts, "erp_documents": docs[:4], "tolerance": "0"})
    assert [d["date"] for d in strict["differences"]] == ["2025-01-06"]


def test_three_way_match_claims_over_billing() -> None:
    po = {
        "number": "PO-1",
        "lines": [
            {"sku": "A", "quantity": 10, "unit_price": "5.00"},
            {"sku": "B", "quantity": 2, "unit_price": "100.00"},
        ],
    }
    receipt = {"lines": [{"sku": "A", "quantity": 8}, {"sku": "B", "quantity": 2}]}
    invoice = {
        "number": "INV-9",
        "lines": [
            {"sku": "A", "quantity": 10, "unit_price": "5.00"},
            {"sku": "B", "quantity": 2, "unit_price": "101.50"},
            {"sku": "C", "quantity": 1, "unit_price": "7.25"},
        ],
    }
    out = reconcile.three_way_match({"po": po, "receipt": receipt, "invoice": invoice, "price_tolerance_pct": "1"})
    assert out["mismatches"] == [
        {"sku": "A", "problem": "invoiced 10 but received 8", "claim": "10.00"},
        {"sku": "B", "problem": "unit price 101.50 vs PO 100.00", "claim": "3.00"},
        {"sku": "C", "problem": "not on the purchase order", "claim": "7.25"},
    ]
    assert (out["claim_amount"], out["invoice_total"], out["matched"]) == ("20.25", "260.25", False)
    clean = reconcile.three_way_match(
        {"po": po, "receipt": {"lines": po["lines"]}, "invoice": po, "price_tolerance_pct": "0"}
    )
    assert (clean["matched"], clean["claim_amount"]) == (True, "0.00")
    tolerant = reconcile.three_way_match(
        {"po": po, "receipt": receipt, "invoice": {"lines": invoice["lines"][:1]}, "qty_tolerance_pct": "25"}
    )
    assert tolerant["matched"] is True
