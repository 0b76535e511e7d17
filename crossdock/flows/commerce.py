"""Pure order transforms for the templates: Shopify order → canonical sales order → ERP bodies.

Every function takes and returns plain JSON (what a flow step sees) and never touches the network
or the database, so the engine registers them with `effect=False`. Money is `Decimal`, exact, and
leaves as a string with two decimals. A check that fails raises `StepFailed` with the taxonomy
category (`sku_not_found`, `price_mismatch`, `validation`, `address_validation`), which the engine
journals as a `data` failure that the exception desk turns into a case. Policy checks (credit
limit, discount) never fail: they answer `needs_approval` and the template opens the approval.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crossdock.engine.actions import ActionContext, ActionSpec, StepFailed
from crossdock.flows.money import dec, money, pct

if TYPE_CHECKING:
    from crossdock.engine.core import Engine

# -- map ------------------------------------------------------------------------------------------


def _address(raw: Any) -> dict[str, str]:
    raw = raw if isinstance(raw, Mapping) else {}
    name = raw.get("name") or " ".join(p for p in (raw.get("first_name"), raw.get("last_name")) if p)
    return {
        "name": str(name or ""),
        "company": str(raw.get("company") or ""),
        "address1": str(raw.get("address1") or ""),
        "address2": str(raw.get("address2") or ""),
        "city": str(raw.get("city") or ""),
        "province_code": str(raw.get("province_code") or ""),
        "zip": str(raw.get("zip") or ""),
        "country_code": str(raw.get("country_code") or ""),
        "phone": str(raw.get("phone") or ""),
    }


def map_order(data: Mapping[str, Any]) -> dict[str, Any]:
    """A Shopify order (REST/webhook shape) as a canonical sales order.

    Lines keep the storefront SKU, quantity, unit price and the line's discount (the sum of its
    `discount_allocations`); `net` = quantity × unit price − discount. `discount_pct` is the
    order's discounts as a percentage of the gross line total.
    """
    order = data.get("order", data)
    if not isinstance(order, Mapping) or order.get("id") is None:
        raise StepFailed("The order has no `id`; is this a Shopify order payload?", category="validation")
    lines, gross, discount_total, tax_total = [], Decimal(0), Decimal(0), Decimal(0)
    for i, raw in enumerate(order.get("line_items") or []):
        qty = dec(raw.get("quantity"), f"line_items[{i}].quantity")
        unit = dec(raw.get("price"), f"line_items[{i}].price")
        discount = sum((dec(a.get("amount")) for a in raw.get("discount_allocations") or []), Decimal(0))
        tax = sum((dec(t.get("price")) for t in raw.get("tax_lines") or []), Decimal(0))
        line_gross = qty * unit
        gross += line_gross
        discount_total += discount
        tax_total += tax
        lines.append(
            {
                "line_id": str(raw.get("id", i)),
                "sku": str(raw.get("sku") or ""),
                "variant_id": raw.get("variant_id"),
                "title": str(raw.get("name") or raw.get("title") or ""),
                "quantity": int(qty) if qty == qty.to_integral_value() else str(qty),
                "unit_price": money(unit),
                "discount": money(discount),
                "net": money(line_gross - discount),
                "tax": money(tax),
            }
        )
    if not lines:
        raise StepFailed(f"Order {order.get('name', order['id'])} has no line items.", category="validation")
    shipping = sum(
        (dec(s.get("discounted_price", s.get("price"))) for s in order.get("shipping_lines") or []), Decimal(0)
    )
    raw_customer = order.get("customer")
    customer: Mapping[str, Any] = raw_customer if isinstance(raw_customer, Mapping) else {}
    email = str(order.get("email") or customer.get("email") or "")
    ship_to = _address(order.get("shipping_address") or customer.get("default_address"))
    name = " ".join(p for p in (customer.get("first_name"), customer.get("last_name")) if p) or ship_to["name"]
    return {
        "external_id": str(order["id"]),
        "number": str(order.get("name") or order["id"]),
        "currency": str(order.get("currency") or ""),
        "created_at": order.get("created_at"),
        "financial_status": order.get("financial_status"),
        "customer": {
            "external_id": str(customer.get("id") or email),
            "email": email,
            "name": name,
            "phone": str(customer.get("phone") or ship_to["phone"]),
            "company": ship_to["company"],
        },
        "ship_to": ship_to,
        "bill_to": _address(order.get("billing_address") or order.get("shipping_address")),
        "lines": lines,
        "gross": money(gross),
        "discount_total": money(discount_total),
        "discount_pct": str(pct(discount_total, gross)),
        "subtotal": money(gross - discount_total),
        "shipping": money(shipping),
        "tax_total": money(tax_total),
        "reported_tax": money(dec(order.get("total_tax"))),
        "total": money(gross - discount_total + shipping + tax_total),
        "reported_total": money(dec(order.get("total_price"))),
    }


def apply_sku_map(data: Mapping[str, Any]) -> dict[str, Any]:
    """Replace storefront SKUs by ERP item numbers through `sku_map` (unmapped SKUs pass through)."""
    sku_map = data.get("sku_map") or {}
    lines = []
    for line in data.get("lines") or []:
        sku = str(line.get("sku") or "")
        lines.append({**line, "storefront_sku": sku, "sku": str(sku_map.get(sku, sku))})
    return {"lines": lines, "skus": sorted({line["sku"] for line in lines})}


# -- validate -------------------------------------------------------------------------------------

_SKU_FIELDS = ("number", "itemId", "sku", "itemid")
_PRICE_FIELDS = ("unit_price", "unitPrice", "basePrice", "price", "baseprice")


def _items_by_sku(items: Any) -> dict[str, Mapping[str, Any]]:
    """ERP items by SKU, from a find_items output (`{items: {sku: item}}`) or a list of items."""
    if isinstance(items, Mapping):
        items = items.get("items", items.get("value", []))
    if isinstance(items, Mapping):  # the connector actions key their items by the SKU asked for
        return {str(sku): item for sku, item in items.items() if isinstance(item, Mapping)}
    out: dict[str, Mapping[str, Any]] = {}
    for item in items or []:
        sku = next((item[f] for f in _SKU_FIELDS if item.get(f) not in (None, "")), None)
        if sku is not None:
            out[str(sku)] = item
    return out


def _unusable(item: Mapping[str, Any] | None) -> bool:
    return item is None or any(item.get(f) is True for f in ("blocked", "isInactive", "inactive"))


def validate_skus(data: Mapping[str, Any]) -> dict[str, Any]:
    """Every line's SKU must be an ERP item (blocked/inactive items count as missing)."""
    items = _items_by_sku(data.get("erp_items"))
    missing = []
    for line in data.get("lines") or []:
        if _unusable(items.get(str(line.get("sku")))):
            missing.append(str(line.get("sku")))
    if missing:
        raise StepFailed(
            f"SKU(s) not found in the ERP: {', '.join(sorted(set(missing)))}. Map them in the flow instance's "
            "`sku_map` (or create the items), then replay from step `skus`.",
            category="sku_not_found",
        )
    return {"ok": True, "count": len(data.get("lines") or [])}


def check_prices(data: Mapping[str, Any]) -> dict[str, Any]:
    """Each line's unit price must be within `tolerance_pct` of the ERP item's price."""
    items = _items_by_sku(data.get("erp_items"))
    tolerance = dec(data.get("tolerance_pct", "0"), "tolerance_pct")
    problems = []
    for line in data.get("lines") or []:
        item = items.get(str(line.get("sku")))
        if item is None:
            continue
        erp_price = next((dec(item[f]) for f in _PRICE_FIELDS if item.get(f) is not None), None)
        if erp_price is None or erp_price == 0:
            continue
        unit = dec(line.get("unit_price"))
        off = pct(abs(unit - erp_price), erp_price)
        if off > tolerance:
            problems.append(f"{line.get('sku')}: {money(unit)} vs ERP {money(erp_price)} ({off}%)")
    if problems:
        raise StepFailed(
            f"Price differs from the ERP by more than {tolerance}%: {'; '.join(problems)}.", category="price_mismatch"
        )
    return {"ok": True}


def check_tax(data: Mapping[str, Any]) -> dict[str, Any]:
    """Line taxes add up to the order's tax, and the effective rate is at most `max_rate_pct`."""
    order = data.get("order") or {}
    lines_tax = sum((dec(line.get("tax")) for line in order.get("lines") or []), Decimal(0))
    reported = dec(order.get("reported_tax", order.get("tax_total")))
    if lines_tax != reported:
        raise StepFailed(
            f"Order {order.get('number')}: line taxes {money(lines_tax)} ≠ order tax {money(reported)}.",
            category="validation",
        )
    reported_total = order.get("reported_total")
    if reported_total is not None and dec(reported_total) != dec(order.get("total")):
        raise StepFailed(
            f"Order {order.get('number')}: lines, shipping and tax add up to {order.get('total')}, "
            f"but the order total is {reported_total}.",
            category="validation",
        )
    rate = pct(lines_tax, dec(order.get("subtotal")))
    max_rate = dec(data.get("max_rate_pct", "25"), "max_rate_pct")
    if rate > max_rate:
        raise StepFailed(
            f"Order {order.get('number')}: tax rate {rate}% is above the plausible maximum {max_rate}%.",
            category="validation",
        )
    return {"ok": True, "rate_pct": str(rate)}


_ZIP = {"US": re.compile(r"^\d{5}(-\d{4})?$"), "CA": re.compile(r"^[A-Z]\d[A-Z] ?\d[A-Z]\d$", re.I)}


def check_address(data: Mapping[str, Any]) -> dict[str, Any]:
    """The ship-to address is complete, in an allowed country, with a well-formed postal code."""
    addr = data.get("address") or {}
    allowed = [str(c).upper() for c in data.get("countries") or []]
    problems = [f"{f} is missing" for f in ("name", "address1", "city", "zip", "country_code") if not addr.get(f)]
    country = str(addr.get("country_code") or "").upper()
    if country and allowed and country not in allowed:
        problems.append(f"country {country} is not served (allowed: {', '.join(allowed)})")
    pattern = _ZIP.get(country)
    if addr.get("zip") and pattern is not None and not pattern.match(str(addr["zip"])):
        problems.append(f"postal code {addr['zip']!r} is not valid for {country}")
    if country in ("US", "CA") and not addr.get("province_code"):
        problems.append("state/province is missing")
    if problems:
        raise StepFailed(f"Ship-to address: {'; '.join(problems)}.", category="address_validation")
    return {"ok": True}


def check_credit(data: Mapping[str, Any]) -> dict[str, Any]:
    """Exposure = balance + order total vs the credit limit (0 or missing: no limit, as in BC)."""
    customer = data.get("customer") or {}
    limit = dec(_first(customer, ("credit_limit", "creditLimit", "creditlimit"), data.get("credit_limit")))
    balance = dec(_first(customer, ("balance_due", "balanceDue", "balance"), data.get("balance")))
    exposure = balance + dec(data.get("amount"))
    over = limit > 0 and exposure > limit
    return {
        "credit_limit": money(limit),
        "exposure": money(exposure),
        "available": money(limit - balance) if limit > 0 else None,
        "over_limit": over,
        "needs_approval": over,
    }


def _first(row: Mapping[str, Any], names: tuple[str, ...], default: Any) -> Any:
    return next((row[n] for n in names if row.get(n) is not None), default)


def check_discount(data: Mapping[str, Any]) -> dict[str, Any]:
    """Discount % above the merchant's threshold needs an approval (a learned score replaces this)."""
    discount = dec(data.get("discount_pct"))
    threshold = dec(data.get("threshold_pct", "100"), "threshold_pct")
    return {"discount_pct": str(discount), "threshold_pct": str(threshold), "needs_approval": discount > threshold}


# -- shape ----------------------------------------------------------------------------------------


def _date(value: Any) -> str | None:
    return str(value)[:10] if value else None


def to_businesscentral_order(data: Mapping[str, Any]) -> dict[str, Any]:
    """The input of `businesscentral.upsert_sales_order` (besides `connection`) for a canonical order.

    `external_document_number` is the Shopify order id; lines carry the unit price and the line's
    discount, so Business Central's totals equal the order's subtotal.
    """
    order = data.get("order") or {}
    ship = order.get("ship_to") or {}
    body: dict[str, Any] = {
        "external_document_number": str(order.get("external_id"))[:35],
        "customer_number": str(data.get("customer_number") or ""),
        "email": str((order.get("customer") or {}).get("email") or "")[:80] or None,
        "order_date": _date(order.get("created_at")),
        "ship_to": {
            "name": str(ship.get("name") or "")[:100],
            "address_line1": str(ship.get("address1") or "")[:100],
            "address_line2": str(ship.get("address2") or "")[:50],
            "city": str(ship.get("city") or "")[:30],
            "state": str(ship.get("province_code") or "")[:30],
            "post_code": str(ship.get("zip") or "")[:20],
            "country": str(ship.get("country_code") or "")[:10],
        },
        "lines": [
            {
                "item_number": str(line["sku"])[:20],
                "description": str(line.get("title") or "")[:100] or None,
                "quantity": float(dec(line["quantity"])),
                "unit_price": float(dec(line["unit_price"])),
                "discount_amount": float(dec(line.get("discount"))),
            }
            for line in order.get("lines") or []
        ],
    }
    if data.get("currency_code"):
        body["currency_code"] = str(data["currency_code"])
    return body


def _ns_item(sku: str, items: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    found = items.get(sku)
    return {"id": str(found["id"])} if found and found.get("id") else {"external_id": sku}


def to_netsuite_order(data: Mapping[str, Any]) -> dict[str, Any]:
    """The input of `netsuite.upsert_sales_order` (besides `connection`) for a canonical order.

    NetSuite computes amount = quantity × rate. With a `discount_item`, lines keep their unit price
    and the order discount is a negative line on that item; without one, each line's rate is its net
    unit price (discount included), so the NetSuite total equals the order's subtotal either way.
    The discount is also kept in `custbody_cd_discount`. Items are referenced by the internal id
    `erp_items` (the find_items output) knows, else by external id = the SKU.
    """
    order = data.get("order") or {}
    ship = order.get("ship_to") or {}
    items = _items_by_sku(data.get("erp_items"))
    discount_item = str(data.get("discount_item") or "")
    lines: list[dict[str, Any]] = []
    for line in order.get("lines") or []:
        qty = dec(line["quantity"])
        rate = dec(line["unit_price"]) if discount_item else (dec(line["net"]) / qty).quantize(Decimal("0.0001"))
        lines.append(
            {
                "item": _ns_item(str(line["sku"]), items),
                "quantity": float(qty),
                "rate": float(rate),
                "description": str(line.get("title") or "")[:100] or None,
            }
        )
    discount = dec(order.get("discount_total"))
    if discount and discount_item:
        lines.append({"item": {"external_id": discount_item}, "quantity": 1.0, "rate": -float(discount)})
    customer = data.get("customer_external_id") or (order.get("customer") or {}).get("external_id")
    return {
        "external_id": str(order.get("external_id")),
        "customer": {"external_id": str(customer)},
        "lines": lines,
        "memo": f"Shopify order {order.get('number')}",
        "other_ref_num": str(order.get("number") or ""),
        "tran_date": _date(order.get("created_at")),
        "fields": {
            "custbody_cd_discount": float(discount),
            "custbody_cd_ship_to": ", ".join(
                p for p in (ship.get("name"), ship.get("address1"), ship.get("city"), ship.get("zip")) if p
            ),
        },
    }


def customer_body(data: Mapping[str, Any]) -> dict[str, Any]:
    """The ERP customer fields of a canonical order's customer (both ERPs' upsert actions take these)."""
    order = data.get("order") or {}
    customer = order.get("customer") or {}
    ship = order.get("ship_to") or {}
    return {
        "external_id": f"shopify-{customer.get('external_id')}",
        "name": str(customer.get("name") or customer.get("email") or "")[:100],
        "email": str(customer.get("email") or "")[:80],
        "phone": str(customer.get("phone") or ""),
        "address": {
            "line1": ship.get("address1", ""),
            "city": ship.get("city", ""),
            "state": ship.get("province_code", ""),
            "postal_code": ship.get("zip", ""),
            "country": ship.get("country_code", ""),
        },
    }


# -- registration ---------------------------------------------------------------------------------


def _pure(fn: Callable[[Mapping[str, Any]], dict[str, Any]]) -> Callable[[ActionContext, Any], Awaitable[Any]]:
    async def action(_ctx: ActionContext, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise StepFailed(
                f"{fn.__name__} needs an object as input, not {type(data).__name__}.", category="validation"
            )
        return fn(data)

    action.__name__ = fn.__name__
    return action


def commerce_functions() -> dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]]:
    """Action name → pure function, for every transform the templates use."""
    from crossdock.flows import checks, reconcile

    fns: list[Callable[[Mapping[str, Any]], dict[str, Any]]] = [
        map_order,
        apply_sku_map,
        validate_skus,
        check_prices,
        check_tax,
        check_address,
        check_credit,
        check_discount,
        to_businesscentral_order,
        to_netsuite_order,
        customer_body,
        checks.inventory_plausibility,
        checks.price_changes,
        checks.approve_held,
        checks.route_by_amount,
        checks.rma_decision,
        checks.map_refund,
        checks.map_return,
        checks.to_businesscentral_credit_memo,
        checks.to_netsuite_credit_memo,
        checks.map_shipment,
        checks.fulfillment_delays,
        reconcile.match_payouts,
        reconcile.three_way_match,
    ]
    return {f"commerce.{fn.__name__}": fn for fn in fns}


def register_commerce_actions(engine: Engine) -> None:
    """Register the commerce transforms (`commerce.*`, no effects) and `flows.live_config`."""
    from crossdock.flows.live import live_config_action

    for name, fn in commerce_functions().items():
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        engine.actions.register(ActionSpec(name, _pure(fn), effect=False, description=doc), replace=True)
    engine.actions.register(
        ActionSpec(
            "flows.live_config",
            live_config_action(engine),
            effect=False,
            description="The flow instance's current value of live parameters (maps), with rendered defaults.",
        ),
        replace=True,
    )
