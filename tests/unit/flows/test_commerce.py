"""Order transforms: Shopify order → canonical sales order → ERP bodies, and the order checks."""

from __future__ import annotations

from typing import Any

import pytest

from crossdock.connectors.sandbox.shopify_orders import make_order, make_product
from crossdock.engine.actions import StepFailed
from crossdock.flows import commerce as c


def order(**kw: Any) -> dict[str, Any]:
    return make_order(4, variants=make_product(1)["variants"], line_count=2, **kw)


def test_map_order_is_exact_to_the_cent() -> None:
    m = c.map_order({"order": order()})

    assert (m["external_id"], m["number"], m["currency"]) == ("5100000000004", "#1005", "USD")
    assert [
        (li["sku"], li["quantity"], li["unit_price"], li["discount"], li["net"], li["tax"]) for li in m["lines"]
    ] == [
        ("CD-00001-M", 1, "43.83", "4.39", "39.44", "3.25"),
        ("CD-00001-S", 1, "43.83", "4.38", "39.45", "3.25"),
    ]
    assert (m["gross"], m["discount_total"], m["discount_pct"], m["subtotal"]) == ("87.66", "8.77", "10.00", "78.89")
    assert (m["shipping"], m["tax_total"], m["total"], m["reported_total"]) == ("7.95", "6.50", "93.34", "93.34")
    assert m["customer"] == {
        "external_id": "6900000000004",
        "email": "mia.smith4@example.com",
        "name": "Mia Smith",
        "phone": "+15556999578",
        "company": "",
    }
    assert (m["ship_to"]["city"], m["ship_to"]["province_code"], m["ship_to"]["zip"]) == ("Seattle", "WA", "98109")


def test_map_order_refuses_a_payload_without_id_or_lines() -> None:
    with pytest.raises(StepFailed) as no_id:
        c.map_order({"order": {"name": "#1"}})
    assert no_id.value.category == "validation"
    with pytest.raises(StepFailed) as no_lines:
        c.map_order({"order": {"id": 1, "name": "#1", "line_items": []}})
    assert str(no_lines.value) == "Order #1 has no line items."


def test_sku_map_replaces_mapped_skus_and_passes_the_rest() -> None:
    lines = [{"sku": "A"}, {"sku": "B"}]
    out = c.apply_sku_map({"lines": lines, "sku_map": {"A": "1000"}})
    assert out == {
        "lines": [{"sku": "1000", "storefront_sku": "A"}, {"sku": "B", "storefront_sku": "B"}],
        "skus": ["1000", "B"],
    }


def test_unknown_or_blocked_sku_is_sku_not_found() -> None:
    lines = [{"sku": "1000"}, {"sku": "1001"}, {"sku": "X"}]
    items = {"items": [{"number": "1000"}, {"number": "1001", "blocked": True}]}
    with pytest.raises(StepFailed) as exc:
        c.validate_skus({"lines": lines, "erp_items": items})
    assert exc.value.category == "sku_not_found"
    assert str(exc.value).startswith("SKU(s) not found in the ERP: 1001, X.")
    assert c.validate_skus({"lines": lines[:1], "erp_items": [{"itemId": "1000"}]}) == {"ok": True, "count": 1}


def test_price_within_tolerance_passes_and_beyond_is_price_mismatch() -> None:
    lines = [{"sku": "1000", "unit_price": "10.10"}]
    items = [{"number": "1000", "unitPrice": 10.0}]
    assert c.check_prices({"lines": lines, "erp_items": items, "tolerance_pct": "1.0"}) == {"ok": True}
    with pytest.raises(StepFailed) as exc:
        c.check_prices({"lines": lines, "erp_items": items, "tolerance_pct": "0.99"})
    assert exc.value.category == "price_mismatch"
    assert str(exc.value) == "Price differs from the ERP by more than 0.99%: 1000: 10.10 vs ERP 10.00 (1.00%)."


def test_tax_must_add_up_and_be_plausible() -> None:
    m = c.map_order({"order": order()})
    assert c.check_tax({"order": m, "max_rate_pct": "10"}) == {"ok": True, "rate_pct": "8.24"}
    with pytest.raises(StepFailed) as rate:
        c.check_tax({"order": m, "max_rate_pct": "8"})
    assert (rate.value.category, str(rate.value)) == (
        "validation",
        "Order #1005: tax rate 8.24% is above the plausible maximum 8%.",
    )
    with pytest.raises(StepFailed) as total:
        c.check_tax({"order": {**m, "reported_tax": "6.51"}})
    assert str(total.value) == "Order #1005: line taxes 6.50 ≠ order tax 6.51."


def test_address_problems_are_address_validation() -> None:
    good = {
        "name": "A B",
        "address1": "1 Main",
        "city": "Austin",
        "zip": "78701",
        "country_code": "US",
        "province_code": "TX",
    }
    assert c.check_address({"address": good, "countries": ["US"]}) == {"ok": True}
    bad = {**good, "zip": "7870", "province_code": "", "city": ""}
    with pytest.raises(StepFailed) as exc:
        c.check_address({"address": bad, "countries": ["US"]})
    assert exc.value.category == "address_validation"
    assert str(exc.value) == (
        "Ship-to address: city is missing; postal code '7870' is not valid for US; state/province is missing."
    )
    with pytest.raises(StepFailed) as country:
        c.check_address({"address": {**good, "country_code": "DE", "zip": "10115"}, "countries": ["US", "CA"]})
    assert str(country.value) == "Ship-to address: country DE is not served (allowed: US, CA)."


def test_credit_limit_and_discount_thresholds_ask_for_approval() -> None:
    over = c.check_credit({"customer": {"creditLimit": 1000, "balanceDue": 950.5}, "amount": "49.51"})
    assert over == {
        "credit_limit": "1000.00",
        "exposure": "1000.01",
        "available": "49.50",
        "over_limit": True,
        "needs_approval": True,
    }
    at_limit = c.check_credit({"customer": {"creditlimit": "1000", "balance": "950.49"}, "amount": "49.51"})
    assert (at_limit["exposure"], at_limit["needs_approval"]) == ("1000.00", False)
    no_limit = c.check_credit({"customer": {"creditLimit": 0, "balanceDue": 99999}, "amount": "1"})
    assert (no_limit["available"], no_limit["needs_approval"]) == (None, False)
    assert c.check_discount({"discount_pct": "30.01", "threshold_pct": "30"})["needs_approval"] is True
    assert c.check_discount({"discount_pct": "30.00", "threshold_pct": "30"})["needs_approval"] is False


def test_business_central_order_input_keys_by_the_shopify_order_id() -> None:
    m = c.map_order({"order": order()})
    body = c.to_businesscentral_order({"order": m, "customer_number": "C00010"})
    assert (body["external_document_number"], body["customer_number"], body["ship_to"]["post_code"]) == (
        "5100000000004",
        "C00010",
        "98109",
    )
    assert body["lines"] == [
        {"item_number": "CD-00001-M", "description": "CD-00001-M - M", "quantity": 1.0, "unit_price": 43.83,
         "discount_amount": 4.39},
        {"item_number": "CD-00001-S", "description": "CD-00001-S - S", "quantity": 1.0, "unit_price": 43.83,
         "discount_amount": 4.38},
    ]  # fmt: skip
    assert "currency_code" not in body


def test_netsuite_order_input_uses_external_ids_and_a_discount_line() -> None:
    m = c.map_order({"order": order()})
    body = c.to_netsuite_order({"order": m, "discount_item": "DISC"})
    assert (body["external_id"], body["other_ref_num"], body["customer"]) == (
        "5100000000004",
        "#1005",
        {"external_id": "6900000000004"},
    )
    assert body["lines"][-1] == {"item": {"external_id": "DISC"}, "quantity": 1.0, "rate": -8.77}
    assert body["fields"]["custbody_cd_discount"] == 8.77
    # Without a discount item, each rate is the net unit price; known items go by internal id.
    without = c.to_netsuite_order({"order": m, "erp_items": {"items": {"CD-00001-M": {"id": "1009"}}}})
    assert [(li["item"], li["rate"]) for li in without["lines"]] == [
        ({"id": "1009"}, 39.44),
        ({"external_id": "CD-00001-S"}, 39.45),
    ]


def test_customer_body_prefixes_the_storefront_id() -> None:
    m = c.map_order({"order": order()})
    body = c.customer_body({"order": m})
    assert (body["external_id"], body["name"], body["address"]["postal_code"]) == (
        "shopify-6900000000004",
        "Mia Smith",
        "98109",
    )


def test_bad_numbers_are_validation_failures() -> None:
    with pytest.raises(StepFailed) as exc:
        c.check_discount({"discount_pct": "ten"})
    assert (exc.value.category, str(exc.value)) == ("validation", "amount 'ten' is not a number.")


async def test_registered_actions_are_effect_free_and_refuse_non_objects() -> None:
    from crossdock.engine.actions import ActionRegistry

    class FakeEngine:
        actions = ActionRegistry()
        db = None

    engine = FakeEngine()
    c.register_commerce_actions(engine)  # type: ignore[arg-type]
    names = engine.actions.names()
    assert len(names) == 25 and "flows.live_config" in names and "commerce.map_order" in names
    spec = engine.actions.get("commerce.check_discount")
    assert spec.effect is False
    with pytest.raises(StepFailed) as exc:
        await spec.fn(None, [1])  # type: ignore[arg-type]
    assert str(exc.value) == "check_discount needs an object as input, not list."
