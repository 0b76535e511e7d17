"""Bound actions of the Business Central simulator: `shipAndInvoice` on orders, `post`/`cancel` on credit memos.

Posting moves stock and the customer's balance the way BC does: shipping takes inventory out and
adds the invoice to `balanceDue`; a posted credit memo puts the goods back and credits the balance.
A fully shipped and invoiced order is deleted, as BC deletes completed sales orders.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from crossdock.connectors.sandbox.businesscentral_entities import ENTITIES
from crossdock.connectors.sandbox.businesscentral_state import BCError, Company, CompanyStore


def _money(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _adjust(store: CompanyStore, company: Company, record: dict[str, Any] | None, field: str, delta: Any) -> None:
    if record is None:
        return
    record[field] = _money(Decimal(str(record[field])) + Decimal(str(delta)))
    store.touch(company, record)


def ship_and_invoice(store: CompanyStore, company: Company, order_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Post the whole order: one shipment and one invoice; then the completed order is deleted."""
    order = store.record(company, "salesOrders", order_id)
    lines = store.doc_lines(company, order["id"])
    if not lines:
        raise BCError(400, "Application_DialogException", f"There is nothing to post for Order {order['number']}.")
    for line in lines:
        store.check_inventory(company, line, line["quantity"])
    items = company.table("items")
    for line in lines:
        item = items.get(line["itemId"] or "")
        if item is not None and item["type"] == "Inventory":
            _adjust(store, company, item, "inventory", -Decimal(str(line["quantity"])))
    today = datetime.fromtimestamp(store.now(), UTC).date().isoformat()
    shipment_fields = ENTITIES["salesShipments"].fields
    head = {k: v for k, v in order.items() if k in shipment_fields and k not in {"id", "number"}}
    shipment = store.seed(
        company,
        "salesShipments",
        [{**head, "orderNumber": order["number"], "shipmentDate": today, "postingDate": today}],
    )[0]
    invoice_fields = ENTITIES["salesInvoices"].fields
    head = {k: v for k, v in order.items() if k in invoice_fields and k not in {"id", "number"}}
    invoice = store.seed(
        company,
        "salesInvoices",
        [
            {
                **head,
                "orderId": order["id"],
                "orderNumber": order["number"],
                "status": "Open",
                "invoiceDate": today,
                "postingDate": today,
                "remainingAmount": order["totalAmountIncludingTax"],
            }
        ],
    )[0]
    for doc in (shipment, invoice):
        for line in lines:
            copied = {**line, "id": str(uuid.uuid4()), "documentId": doc["id"]}
            copied.update(shippedQuantity=line["quantity"], invoicedQuantity=line["quantity"])
            company.lines.setdefault(doc["id"], {})[copied["id"]] = copied
            store.touch(company, copied)
    customer = company.table("customers").get(order["customerId"] or "")
    _adjust(store, company, customer, "balanceDue", order["totalAmountIncludingTax"])
    store.delete(company, "salesOrders", order["id"])
    return shipment, invoice


def post_credit_memo(store: CompanyStore, company: Company, memo_id: str) -> dict[str, Any]:
    memo = store.record(company, "salesCreditMemos", memo_id)
    if memo["status"] != "Draft":
        raise BCError(400, "Application_DialogException", f"Credit Memo {memo['number']} is already posted.")
    lines = store.doc_lines(company, memo["id"])
    if not lines:
        raise BCError(400, "Application_DialogException", f"There is nothing to post for Credit Memo {memo['number']}.")
    items = company.table("items")
    for line in lines:  # returned goods go back on the shelf
        item = items.get(line["itemId"] or "")
        if item is not None and item["type"] == "Inventory":
            _adjust(store, company, item, "inventory", line["quantity"])
    customer = company.table("customers").get(memo["customerId"] or "")
    _adjust(store, company, customer, "balanceDue", -Decimal(str(memo["totalAmountIncludingTax"])))
    memo["status"] = "Open"
    store.touch(company, memo)
    return memo


def cancel_credit_memo(store: CompanyStore, company: Company, memo_id: str) -> dict[str, Any]:
    memo = store.record(company, "salesCreditMemos", memo_id)
    if memo["status"] != "Open":
        raise BCError(400, "Application_DialogException", f"Credit Memo {memo['number']} must be posted to cancel it.")
    memo["status"] = "Canceled"
    store.touch(company, memo)
    return memo


ACTIONS = {
    "Microsoft.NAV.shipAndInvoice": ship_and_invoice,
    "Microsoft.NAV.post": post_credit_memo,
    "Microsoft.NAV.cancel": cancel_credit_memo,
}
