"""Shopify fulfillment, refund and payout operations on a simulated shop.

Fulfillment follows the fulfillment-order model: a fulfillment draws quantities from open
fulfillment orders and closes each one when nothing is left; asking for more than is open, or
fulfilling a closed fulfillment order, is the 422 "fulfillment state" failure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from crossdock.connectors.sandbox.shopify_orders import money, shopify_time
from crossdock.connectors.sandbox.shopify_state import NOT_FOUND, ShopifyAPIError, ShopStore, blank


def create_fulfillment(store: ShopStore, body: Mapping[str, Any]) -> dict[str, Any]:
    groups = body.get("line_items_by_fulfillment_order")
    if not groups or not isinstance(groups, list):
        raise blank("line_items_by_fulfillment_order")
    with store.lock:
        plan: list[tuple[dict[str, Any], dict[str, Any], int]] = []
        for group in groups:
            fo = store.fulfillment_orders.get(int(group.get("fulfillment_order_id") or 0))
            if fo is None:
                raise ShopifyAPIError(404, NOT_FOUND)
            if fo["status"] not in ("open", "in_progress"):
                raise ShopifyAPIError(
                    422, {"errors": [f"Fulfillment order {fo['id']} has an unfulfillable status= {fo['status']}."]}
                )
            wanted = group.get("fulfillment_order_line_items") or [
                {"id": li["id"], "quantity": li["fulfillable_quantity"]} for li in fo["line_items"]
            ]
            for want in wanted:
                line = next((li for li in fo["line_items"] if li["id"] == want.get("id")), None)
                qty = int(want.get("quantity") or 0)
                if line is None or qty <= 0 or qty > line["fulfillable_quantity"]:
                    raise ShopifyAPIError(422, {"errors": ["Invalid fulfillment order line item quantity requested."]})
                plan.append((fo, line, qty))
        if not any(qty for _, _, qty in plan):
            raise ShopifyAPIError(422, {"errors": ["Fulfillment order has no fulfillable line items."]})
        order = store.order(plan[0][0]["order_id"])
        for fo, line, qty in plan:
            line["fulfillable_quantity"] -= qty
            remaining = sum(li["fulfillable_quantity"] for li in fo["line_items"])
            fo["status"] = "closed" if remaining == 0 else "in_progress"
            for li in order["line_items"]:
                if li["id"] == line["line_item_id"]:
                    li["fulfillable_quantity"] -= qty
                    li["fulfillment_status"] = "fulfilled" if li["fulfillable_quantity"] == 0 else "partial"
        tracking = body.get("tracking_info") or {}
        fid = store.next_id()
        now = shopify_time(datetime.now(UTC))
        fulfillment = {
            "id": fid,
            "order_id": order["id"],
            "name": f"{order['name']}.{len(order['fulfillments']) + 1}",
            "status": "success",
            "service": "manual",
            "location_id": plan[0][0]["assigned_location_id"],
            "created_at": now,
            "updated_at": now,
            "tracking_company": tracking.get("company"),
            "tracking_number": tracking.get("number"),
            "tracking_numbers": [tracking["number"]] if tracking.get("number") else [],
            "tracking_url": tracking.get("url"),
            "tracking_urls": [tracking["url"]] if tracking.get("url") else [],
            "notify_customer": bool(body.get("notify_customer", False)),
            "line_items": [
                {**next(li for li in order["line_items"] if li["id"] == line["line_item_id"]), "quantity": qty}
                for _, line, qty in plan
            ],
            "admin_graphql_api_id": f"gid://shopify/Fulfillment/{fid}",
        }
        order["fulfillments"].append(fulfillment)
        left = sum(li.get("fulfillable_quantity", 0) for li in order["line_items"])
        order["fulfillment_status"] = "fulfilled" if left == 0 else "partial"
        order["updated_at"] = now
        return copy.deepcopy(fulfillment)


def create_refund(store: ShopStore, order_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
    with store.lock:
        order = store.order(order_id)
        refund_lines = []
        for want in body.get("refund_line_items") or []:
            line = next((li for li in order["line_items"] if li["id"] == want.get("line_item_id")), None)
            if line is None:
                raise ShopifyAPIError(422, {"errors": {"refund_line_items": ["line_item_id is invalid"]}})
            refunded = sum(
                rl["quantity"]
                for r in order["refunds"]
                for rl in r["refund_line_items"]
                if rl["line_item_id"] == line["id"]
            )
            qty = int(want.get("quantity") or 0)
            if qty <= 0 or qty + refunded > line["quantity"]:
                raise ShopifyAPIError(
                    422,
                    {"errors": {"refund_line_items": ["quantity cannot refund more items than were purchased"]}},
                )
            unit_net = (
                Decimal(line["price"])
                - sum((Decimal(a["amount"]) for a in line["discount_allocations"]), Decimal(0)) / line["quantity"]
            )
            refund_lines.append(
                {
                    "id": store.next_id(),
                    "line_item_id": line["id"],
                    "quantity": qty,
                    "restock_type": want.get("restock_type", "no_restock"),
                    "location_id": want.get("location_id"),
                    "subtotal": float(money(unit_net * qty)),
                    "total_tax": float(money(Decimal(line["tax_lines"][0]["price"]) * qty / line["quantity"]))
                    if line.get("tax_lines")
                    else 0.0,
                    "line_item": copy.deepcopy(line),
                }
            )
        already = sum((Decimal(t["amount"]) for r in order["refunds"] for t in r["transactions"]), Decimal(0))
        refundable = Decimal(order["total_price"]) - already
        transactions = []
        for t in body.get("transactions") or []:
            amount = Decimal(str(t.get("amount") or "0"))
            if amount <= 0 or amount > refundable:
                raise ShopifyAPIError(
                    422,
                    {"errors": {"base": [f"Refund amount must be at most the refundable amount {money(refundable)}"]}},
                )
            refundable -= amount
            transactions.append(
                {
                    "id": store.next_id(),
                    "order_id": order_id,
                    "kind": "refund",
                    "gateway": t.get("gateway", order.get("gateway", "shopify_payments")),
                    "status": "success",
                    "amount": money(amount),
                    "currency": order["currency"],
                    "parent_id": t.get("parent_id"),
                }
            )
        if not refund_lines and not transactions:
            raise blank("refund_line_items")
        now = shopify_time(datetime.now(UTC))
        refund = {
            "id": store.next_id(),
            "order_id": order_id,
            "created_at": now,
            "processed_at": now,
            "note": body.get("note"),
            "restock": any(rl["restock_type"] != "no_restock" for rl in refund_lines),
            "refund_line_items": refund_lines,
            "transactions": transactions,
            "order_adjustments": [],
        }
        order["refunds"].append(refund)
        order["financial_status"] = "refunded" if refundable <= 0 else "partially_refunded"
        order["updated_at"] = now
        return copy.deepcopy(refund)


def payouts(store: ShopStore) -> list[dict[str, Any]]:
    """Daily Shopify Payments payouts computed from paid orders (2.9% + 0.30 per order fee)."""
    by_day: dict[str, list[dict[str, Any]]] = {}
    with store.lock:
        for order in store.orders.values():
            if order.get("financial_status") in ("paid", "partially_refunded", "refunded"):
                by_day.setdefault(order["created_at"][:10], []).append(order)
    payouts = []
    for i, (day, orders) in enumerate(sorted(by_day.items())):
        gross = sum((Decimal(o["total_price"]) for o in orders), Decimal(0))
        fees = sum((Decimal(o["total_price"]) * Decimal("0.029") + Decimal("0.30") for o in orders), Decimal(0))
        payouts.append(
            {
                "id": 800_000 + i,
                "status": "paid",
                "date": day,
                "currency": orders[0]["currency"],
                "amount": money(gross - fees),
                "summary": {
                    "charges_gross_amount": money(gross),
                    "charges_fee_amount": money(fees),
                    "refunds_gross_amount": "0.00",
                    "adjustments_gross_amount": "0.00",
                },
            }
        )
    return payouts
