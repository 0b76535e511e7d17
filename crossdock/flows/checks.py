"""Pure operational checks and shapes for the non-order templates: inventory, prices, returns,
refunds, shipments, approval routing and fulfillment delays.

Like `commerce`, each function maps JSON to JSON with exact Decimal money and no I/O. Checks that
guard against bad data answer `held`/`needs_approval` lists instead of failing, so the template can
apply the plausible part and open one approval for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from crossdock.engine.actions import StepFailed
from crossdock.flows.money import dec, money, pct


def inventory_plausibility(data: Mapping[str, Any]) -> dict[str, Any]:
    """Split ERP stock levels into `apply` and `held`: negative stock, or a drop over `max_drop_pct`.

    Each level is `{sku, location, available, previous}`; `location_map` maps ERP location codes to
    storefront location ids, and `sku_map` ERP item numbers to storefront inventory item ids
    (levels without a mapping are reported in `unmapped`, never guessed).
    """
    max_drop = dec(data.get("max_drop_pct", "50"), "max_drop_pct")
    location_map = data.get("location_map") or {}
    item_map = data.get("item_map") or {}
    apply, held, unmapped = [], [], []
    for level in data.get("levels") or []:
        sku = str(level.get("sku") or level.get("number") or "")
        new = dec(level.get("available", level.get("inventory")), f"{sku}.available")
        previous = level.get("previous")
        row = {
            "sku": sku,
            "location": str(level.get("location") or ""),
            "available": int(new),
            "previous": None if previous is None else int(dec(previous)),
            "inventory_item_id": item_map.get(sku, level.get("inventory_item_id")),
            "location_id": location_map.get(str(level.get("location") or ""), level.get("location_id")),
        }
        if row["inventory_item_id"] is None or row["location_id"] is None:
            unmapped.append(row)
        elif new < 0:
            held.append({**row, "reason": "negative stock"})
        elif previous is not None and dec(previous) > 0 and new < dec(previous):
            drop = pct(dec(previous) - new, dec(previous))
            if drop > max_drop:
                held.append({**row, "reason": f"drop of {drop}% (limit {max_drop}%)"})
            else:
                apply.append(row)
        else:
            apply.append(row)
    return {"apply": apply, "held": held, "unmapped": unmapped, "needs_review": bool(held)}


def price_changes(data: Mapping[str, Any]) -> dict[str, Any]:
    """Split price changes into `release` and `held` (change over `max_change_pct` needs approval)."""
    limit = dec(data.get("max_change_pct", "20"), "max_change_pct")
    variant_map = data.get("variant_map") or {}
    release, held, unmapped = [], [], []
    for change in data.get("changes") or []:
        sku = str(change.get("sku") or change.get("number") or "")
        new = dec(change.get("new_price", change.get("unitPrice")), f"{sku}.new_price")
        old = dec(change.get("old_price", change.get("current_price")), f"{sku}.old_price")
        row = {
            "sku": sku,
            "variant_id": variant_map.get(sku, change.get("variant_id")),
            "old_price": money(old),
            "new_price": money(new),
            "change_pct": str(pct(new - old, old)) if old else None,
        }
        if row["variant_id"] is None:
            unmapped.append(row)
        elif new == old:
            continue
        elif new <= 0 or (old > 0 and abs(pct(new - old, old)) > limit):
            held.append(row)
        else:
            release.append(row)
    return {"release": release, "held": held, "unmapped": unmapped, "needs_approval": bool(held)}


def approve_held(data: Mapping[str, Any]) -> dict[str, Any]:
    """After an approval: the held rows join `release` when approved; otherwise they stay out."""
    decision = (data.get("decision") or {}).get("decision")
    release = list(data.get("release") or [])
    held = list(data.get("held") or [])
    if decision == "approved":
        return {"release": release + held, "rejected": []}
    return {"release": release, "rejected": held}


def route_by_amount(data: Mapping[str, Any]) -> dict[str, Any]:
    """Approval tier of an amount: `auto` below `auto_under`, `manager` up to `finance_over`, else `finance`."""
    amount = dec(data.get("amount"))
    auto_under = dec(data.get("auto_under", "0"), "auto_under")
    finance_over = dec(data.get("finance_over", "10000"), "finance_over")
    tier = "auto" if amount < auto_under else ("manager" if amount <= finance_over else "finance")
    return {"amount": money(amount), "tier": tier}


def rma_decision(data: Mapping[str, Any]) -> dict[str, Any]:
    """A return's value from its lines; auto-approved under `auto_approve_under`, else an approval."""
    lines = data.get("lines") or []
    if not lines:
        raise StepFailed("The return has no lines.", category="validation")
    amount = Decimal(0)
    for i, line in enumerate(lines):
        qty = dec(line.get("quantity"), f"lines[{i}].quantity")
        if qty <= 0:
            raise StepFailed(f"Return line {i} has quantity {qty}; it must be positive.", category="validation")
        amount += qty * dec(line.get("unit_price", line.get("price")), f"lines[{i}].unit_price")
    limit = dec(data.get("auto_approve_under", "0"), "auto_approve_under")
    auto = amount < limit
    return {"amount": money(amount), "auto_approved": auto, "needs_approval": not auto}


def map_refund(data: Mapping[str, Any]) -> dict[str, Any]:
    """A Shopify refund as a canonical credit: lines at their net unit price, tax and total."""
    refund = data.get("refund", data)
    sku_map = data.get("sku_map") or {}
    lines, subtotal, tax = [], Decimal(0), Decimal(0)
    for rl in refund.get("refund_line_items") or []:
        item = rl.get("line_item") or {}
        qty = dec(rl.get("quantity"))
        line_subtotal = dec(rl.get("subtotal"))
        subtotal += line_subtotal
        tax += dec(rl.get("total_tax"))
        sku = str(item.get("sku") or "")
        lines.append(
            {
                "sku": str(sku_map.get(sku, sku)),
                "quantity": int(qty),
                "unit_price": money(line_subtotal / qty) if qty else "0.00",
                "amount": money(line_subtotal),
            }
        )
    paid = sum((dec(t.get("amount")) for t in refund.get("transactions") or []), Decimal(0))
    if not lines and paid == 0:
        raise StepFailed(f"Refund {refund.get('id')} has neither lines nor transactions.", category="validation")
    return {
        "external_id": f"refund-{refund.get('id')}",
        "order_external_id": str(refund.get("order_id")),
        "lines": lines,
        "subtotal": money(subtotal),
        "tax": money(tax),
        "refunded": money(paid),
    }


def map_return(data: Mapping[str, Any]) -> dict[str, Any]:
    """A return request as a canonical credit (`external_id` rma-{return_id}), SKUs through `sku_map`."""
    ret = data.get("return") or {}
    sku_map = data.get("sku_map") or {}
    lines = []
    for i, line in enumerate(ret.get("lines") or []):
        sku = str(line.get("sku") or "")
        unit = dec(line.get("unit_price", line.get("price")), f"lines[{i}].unit_price")
        qty = dec(line.get("quantity"), f"lines[{i}].quantity")
        lines.append({"sku": str(sku_map.get(sku, sku)), "quantity": int(qty), "unit_price": money(unit)})
    return {
        "external_id": f"rma-{ret.get('return_id')}",
        "order_external_id": str(ret.get("order_id")),
        "memo": f"Return {ret.get('return_id')}: {ret.get('reason') or 'no reason given'}"[:999],
        "lines": lines,
    }


def to_businesscentral_credit_memo(data: Mapping[str, Any]) -> dict[str, Any]:
    """The input of `businesscentral.create_credit_memo` (besides `connection`, `post`) for a credit."""
    credit = data.get("credit") or {}
    return {
        "external_document_number": str(credit.get("external_id"))[:35],
        "customer_number": str(data.get("customer_number") or ""),
        "lines": [
            {
                "item_number": str(line["sku"])[:20],
                "quantity": float(dec(line["quantity"])),
                "unit_price": float(dec(line["unit_price"])),
            }
            for line in credit.get("lines") or []
        ],
    }


def to_netsuite_credit_memo(data: Mapping[str, Any]) -> dict[str, Any]:
    """The input of `netsuite.create_credit_memo` / `create_return_authorization` for a credit."""
    credit = data.get("credit") or {}
    return {
        "external_id": str(credit.get("external_id")),
        "customer": {"external_id": str(data.get("customer_external_id") or "")},
        "other_ref_num": str(credit.get("order_external_id") or ""),
        "memo": credit.get("memo"),
        "lines": [
            {
                "item": {"external_id": str(line["sku"])},
                "quantity": float(dec(line["quantity"])),
                "rate": float(dec(line["unit_price"])),
            }
            for line in credit.get("lines") or []
        ],
    }


def map_shipment(data: Mapping[str, Any]) -> dict[str, Any]:
    """An ERP or ShipStation shipment as `{order_id, tracking_number, carrier, tracking_url, ...}`."""
    ship = data.get("shipment", data)
    carriers = data.get("carrier_map") or {}
    order_id = ship.get("externalDocumentNumber") or ship.get("orderKey") or ship.get("orderNumber")
    order_id = order_id or ship.get("order_id")
    tracking = ship.get("trackingNumber") or ship.get("packageTrackingNumber") or ship.get("tracking_number")
    if not order_id:
        raise StepFailed(
            "The shipment names no storefront order (externalDocumentNumber/orderKey).", category="validation"
        )
    if not tracking:
        raise StepFailed(f"Shipment for order {order_id} has no tracking number yet.", category="fulfillment_state")
    carrier = str(ship.get("carrierCode") or ship.get("shippingAgentCode") or ship.get("carrier") or "")
    template = str(data.get("tracking_url_template") or "")
    return {
        "order_id": str(order_id),
        "tracking_number": str(tracking),
        "carrier": str(carriers.get(carrier, carrier)),
        "tracking_url": template.replace("{tracking}", str(tracking)) if template else None,
        "shipped_at": ship.get("shipDate") or ship.get("shipmentDate") or ship.get("shipped_at"),
    }


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def fulfillment_delays(data: Mapping[str, Any]) -> dict[str, Any]:
    """Unfulfilled orders whose promised date (+ `grace_hours`) is before `now`, most late first."""
    now = _when(data.get("now")) or datetime.now(UTC)
    grace = timedelta(hours=float(dec(data.get("grace_hours", "0"), "grace_hours")))
    late = []
    for order in data.get("orders") or []:
        promised = _when(order.get("promised_at"))
        if promised is None or order.get("fulfilled_at") or order.get("fulfillment_status") == "fulfilled":
            continue
        if promised + grace < now:
            hours = (now - promised).total_seconds() / 3600
            late.append(
                {
                    "order_id": str(order.get("id") or order.get("order_id")),
                    "name": order.get("name"),
                    "email": order.get("email"),
                    "promised_at": promised.isoformat(),
                    "hours_late": round(hours, 1),
                }
            )
    late.sort(key=lambda o: -o["hours_late"])
    return {"late": late, "count": len(late), "any": bool(late)}
