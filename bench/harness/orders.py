"""Shopify ``orders/create`` webhook generator and the reference order mapping.

Every order is derived deterministically from its numeric id, so any process can
recompute the expected sales order for an id without shipping state around.

The mapping (the work every system under test does) is defined by
:func:`map_order`; the JavaScript peers (n8n, Node-RED) carry a line-for-line
port in ``bench/peers/mapping.js``. Money is handled in integer cents and
rendered as ``"<units>.<cc>"`` strings so every language agrees to the cent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import uuid
from dataclasses import dataclass

import orjson

#: Shared webhook secret (Shopify app "client secret"); every system gets it.
SECRET = "crossdock-bench-shared-secret"
#: Idempotency-Key used by the reference mapping: ``shopify-order-<id>``.
KEY_PREFIX = "shopify-order-"
#: Order ids below this are reserved for readiness probes (ignored by the recorder).
PROBE_ID_MAX = 1_000_000

_PRODUCTS = [
    ("Merino Crew Sweater", "Heather Grey / M", "Northwind Apparel", "1999.00"),
    ("Canvas Weekender Bag", "Olive", "Harbor Goods", "89.50"),
    ("Organic Cotton Tee", "White / L", "Northwind Apparel", "24.00"),
    ("Ceramic Pour-Over Set", "Matte Black", "Kiln & Co", "54.95"),
    ("Trail Running Socks 3-Pack", "Charcoal / 42-45", "Summit Supply", "18.75"),
    ("Leather Card Holder", "Tan", "Harbor Goods", "39.00"),
    ("Stainless Water Bottle 750ml", "Sage", "Summit Supply", "29.90"),
    ("Linen Throw Pillow", "Sand / 50x50", "Kiln & Co", "44.00"),
]
_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]


def cents(amount: str) -> int:
    """Parse a Shopify money string (``"12.30"``) into integer cents."""
    return round(float(amount) * 100)


def money(c: int) -> str:
    """Render non-negative integer cents as ``"units.cc"``."""
    return f"{c // 100}.{c % 100:02d}"


def make_order(order_id: int) -> dict:
    """Build a realistic ~2 KB Shopify order with 3 line items for ``order_id``."""
    rnd = random.Random(order_id)
    first, last = rnd.choice(_FIRST), rnd.choice(_LAST)
    email = f"{first.lower()}.{last.lower()}{order_id % 997}@example.com"
    number = 1000 + order_id % 9_000_000
    ts = f"2025-11-{1 + order_id % 28:02d}T{order_id % 24:02d}:{order_id % 60:02d}:07-05:00"
    lines = []
    subtotal = 0
    disc_total = 0
    for idx, pidx in enumerate(rnd.sample(range(len(_PRODUCTS)), 3)):
        title, variant, vendor, price = _PRODUCTS[pidx]
        qty = rnd.randint(1, 4)
        line_c = cents(price) * qty
        disc = rnd.choice([0, 0, line_c // 10, 500 if line_c > 500 else 0])
        subtotal += line_c
        disc_total += disc
        lid = order_id * 10 + idx
        lines.append(
            {
                "id": lid,
                "fulfillable_quantity": qty,
                "grams": 450,
                "name": f"{title} - {variant}",
                "price": price,
                "product_id": 7_000_000 + pidx,
                "quantity": qty,
                "sku": f"NW-{pidx:03d}-{variant[:2].upper()}",
                "title": title,
                "total_discount": "0.00",
                "variant_id": 40_000_000 + pidx,
                "variant_title": variant,
                "vendor": vendor,
                "discount_allocations": ([{"amount": money(disc), "discount_application_index": 0}] if disc else []),
            }
        )
    total = subtotal - disc_total
    address = {
        "first_name": first,
        "last_name": last,
        "address1": f"{100 + order_id % 900} Market Street",
        "city": "Springfield",
        "province": "Oregon",
        "country": "United States",
        "zip": "97477",
        "country_code": "US",
        "province_code": "OR",
    }
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "app_id": 580111,
        "buyer_accepts_marketing": False,
        "cancelled_at": None,
        "checkout_token": uuid.UUID(int=order_id).hex,
        "confirmed": True,
        "contact_email": email,
        "created_at": ts,
        "currency": "USD",
        "current_subtotal_price": money(total),
        "current_total_price": money(total),
        "discount_codes": [{"code": "WELCOME10", "amount": money(disc_total), "type": "fixed_amount"}]
        if disc_total
        else [],
        "email": email,
        "financial_status": "paid",
        "fulfillment_status": None,
        "name": f"#{number}",
        "order_number": number,
        "source_name": "web",
        "subtotal_price": money(total),
        "taxes_included": False,
        "test": False,
        "total_discounts": money(disc_total),
        "total_line_items_price": money(subtotal),
        "total_price": money(total),
        "total_tax": "0.00",
        "updated_at": ts,
        "customer": {
            "id": 6_000_000 + order_id % 50_000,
            "email": email,
            "first_name": first,
            "last_name": last,
            "verified_email": True,
        },
        "shipping_address": address,
        "line_items": lines,
        "shipping_lines": [{"code": "Standard", "price": "0.00", "title": "Standard"}],
    }


def sign(body: bytes, secret: str = SECRET) -> str:
    """Shopify's ``X-Shopify-Hmac-Sha256``: base64(HMAC-SHA256(secret, raw body))."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(body: bytes, signature: str | None, secret: str = SECRET) -> bool:
    """Constant-time check of a webhook signature."""
    return bool(signature) and hmac.compare_digest(sign(body, secret), signature)


@dataclass(slots=True)
class Webhook:
    """One precomputed webhook: raw body plus headers (HMAC included)."""

    order_id: int
    body: bytes
    headers: dict[str, str]


def make_webhook(order_id: int, secret: str = SECRET) -> Webhook:
    """Serialize an order and sign it like Shopify does."""
    body = orjson.dumps(make_order(order_id))
    return Webhook(
        order_id,
        body,
        {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": sign(body, secret),
            "X-Shopify-Shop-Domain": "bench-store.myshopify.com",
            "X-Shopify-API-Version": "2025-07",
            "X-Shopify-Webhook-Id": str(uuid.UUID(int=order_id)),
        },
    )


def map_order(order: dict) -> tuple[str, dict]:
    """Reference mapping: Shopify order -> (Idempotency-Key, ERP sales-order body)."""
    lines = []
    subtotal = 0
    discount = 0
    for li in order["line_items"]:
        line_total = cents(li["price"]) * li["quantity"]
        subtotal += line_total
        for alloc in li.get("discount_allocations") or ():
            discount += cents(alloc["amount"])
        lines.append(
            {
                "sku": li["sku"],
                "description": li["title"],
                "quantity": li["quantity"],
                "unit_price": li["price"],
                "line_total": money(line_total),
            }
        )
    customer = order.get("customer") or {}
    body = {
        "external_id": str(order["id"]),
        "order_number": order["name"],
        "order_date": order["created_at"],
        "customer_email": order["email"],
        "customer_name": f"{customer.get('first_name', '')} {customer.get('last_name', '')}".strip(),
        "currency": order["currency"],
        "lines": lines,
        "subtotal": money(subtotal),
        "discount": money(discount),
        "total": money(subtotal - discount),
    }
    return f"{KEY_PREFIX}{order['id']}", body


def expected_totals(order_id: int) -> tuple[str, str]:
    """(total, discount) the ERP must receive for ``order_id``."""
    _, body = map_order(make_order(order_id))
    return body["total"], body["discount"]
