"""Pure reconciliation: Shopify payouts against ERP documents, and the invoice three-way match.

Both answer the differences instead of failing, so the template decides: a clean result posts or
approves, differences beyond tolerance raise a case for finance with the exact amounts.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from crossdock.flows.money import dec, money, pct


def _docs_by_day(docs: Any, kind: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for doc in docs or []:
        if str(doc.get("type", "order")) != kind:
            continue
        day = str(doc.get("date") or "")[:10]
        out[day] = out.get(day, Decimal(0)) + dec(doc.get("total"))
    return out


def match_payouts(data: Mapping[str, Any]) -> dict[str, Any]:
    """Match each payout's gross charges and refunds to the ERP's orders and refunds of that day.

    ERP documents are `{date, total, type: order|refund}`. A payout whose gross differs from the
    ERP by more than `tolerance` (an amount) is a difference; so is an ERP day with no payout.
    The fee (gross − net) is reported so the deposit can book it.
    """
    tolerance = dec(data.get("tolerance", "0.00"), "tolerance")
    orders = _docs_by_day(data.get("erp_documents"), "order")
    refunds = _docs_by_day(data.get("erp_documents"), "refund")
    payouts = data.get("payouts") or []
    if isinstance(payouts, Mapping):
        payouts = payouts.get("payouts", [])
    matched, differences, seen = [], [], set()
    for payout in payouts:
        day = str(payout.get("date") or "")[:10]
        seen.add(day)
        summary = payout.get("summary") or {}
        gross = dec(summary.get("charges_gross_amount"))
        refunded = dec(summary.get("refunds_gross_amount"))
        erp_gross = orders.get(day, Decimal(0))
        erp_refunds = refunds.get(day, Decimal(0))
        row = {
            "payout_id": payout.get("id"),
            "date": day,
            "amount": money(dec(payout.get("amount"))),
            "fees": money(dec(summary.get("charges_fee_amount"))),
            "charges_gross": money(gross),
            "erp_orders": money(erp_gross),
            "refunds_gross": money(abs(refunded)),
            "erp_refunds": money(erp_refunds),
            "difference": money(gross - erp_gross - (abs(refunded) - erp_refunds)),
        }
        if abs(gross - erp_gross) > tolerance or abs(abs(refunded) - erp_refunds) > tolerance:
            differences.append(row)
        else:
            matched.append(row)
    for day in sorted((set(orders) | set(refunds)) - seen):
        differences.append(
            {
                "payout_id": None,
                "date": day,
                "amount": "0.00",
                "fees": "0.00",
                "charges_gross": "0.00",
                "erp_orders": money(orders.get(day, Decimal(0))),
                "refunds_gross": "0.00",
                "erp_refunds": money(refunds.get(day, Decimal(0))),
                "difference": money(-orders.get(day, Decimal(0)) + refunds.get(day, Decimal(0))),
            }
        )
    total_difference = sum((dec(d["difference"]) for d in differences), Decimal(0))
    return {
        "matched": matched,
        "differences": differences,
        "balanced": not differences,
        "total_difference": money(total_difference),
    }


def _lines(doc: Any) -> dict[str, dict[str, Decimal]]:
    out: dict[str, dict[str, Decimal]] = {}
    for line in (doc or {}).get("lines") or []:
        sku = str(line.get("sku") or line.get("item") or "")
        row = out.setdefault(sku, {"qty": Decimal(0), "price": Decimal(0)})
        row["qty"] += dec(line.get("quantity", line.get("qty")), f"{sku}.quantity")
        if line.get("unit_price") is not None:
            row["price"] = dec(line.get("unit_price"), f"{sku}.unit_price")
    return out


def three_way_match(data: Mapping[str, Any]) -> dict[str, Any]:
    """Match a vendor invoice to its purchase order and goods receipt, line by line.

    Per SKU: invoiced qty must not exceed received qty (beyond `qty_tolerance_pct`), and the
    invoiced unit price must be within `price_tolerance_pct` of the PO price. `claim_amount` is
    what the vendor over-billed (to claim back); `matched` is true when there is nothing to claim.
    """
    po, receipt, invoice = _lines(data.get("po")), _lines(data.get("receipt")), _lines(data.get("invoice"))
    qty_tol = dec(data.get("qty_tolerance_pct", "0"), "qty_tolerance_pct")
    price_tol = dec(data.get("price_tolerance_pct", "0"), "price_tolerance_pct")
    mismatches, claim = [], Decimal(0)
    for sku in sorted(invoice):
        inv = invoice[sku]
        ordered = po.get(sku)
        received = receipt.get(sku, {"qty": Decimal(0)})["qty"]
        if ordered is None:
            amount = inv["qty"] * inv["price"]
            claim += amount
            mismatches.append({"sku": sku, "problem": "not on the purchase order", "claim": money(amount)})
            continue
        if inv["qty"] > received and pct(inv["qty"] - received, max(received, Decimal(1))) > qty_tol:
            amount = (inv["qty"] - received) * inv["price"]
            claim += amount
            mismatches.append(
                {
                    "sku": sku,
                    "problem": f"invoiced {inv['qty']} but received {received}",
                    "claim": money(amount),
                }
            )
        if ordered["price"] and pct(abs(inv["price"] - ordered["price"]), ordered["price"]) > price_tol:
            billed_qty = min(inv["qty"], received)
            amount = (inv["price"] - ordered["price"]) * billed_qty
            if amount > 0:
                claim += amount
            mismatches.append(
                {
                    "sku": sku,
                    "problem": f"unit price {money(inv['price'])} vs PO {money(ordered['price'])}",
                    "claim": money(max(amount, Decimal(0))),
                }
            )
    invoice_total = sum((v["qty"] * v["price"] for v in invoice.values()), Decimal(0))
    return {
        "po_number": (data.get("po") or {}).get("number"),
        "invoice_number": (data.get("invoice") or {}).get("number"),
        "invoice_total": money(invoice_total),
        "mismatches": mismatches,
        "claim_amount": money(claim),
        "matched": not mismatches,
    }
