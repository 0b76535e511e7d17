"""Deterministic generators of realistic Shopify REST resources: products, variants and orders.

The field names and money conventions follow the REST/webhook order shape (money as strings with
two decimals, `*_set` objects in shop and presentment currency, discount allocations on lines).
The same `seed` always yields the same resource, so the traffic generator and the benchmark can
replay a day of orders exactly.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

ORDER_ID_BASE = 5_100_000_000_000
PRODUCT_ID_BASE = 7_200_000_000_000
VARIANT_ID_BASE = 4_300_000_000_000
INVENTORY_ITEM_ID_BASE = 4_500_000_000_000
LINE_ITEM_ID_BASE = 13_000_000_000_000
CUSTOMER_ID_BASE = 6_900_000_000_000
DEFAULT_LOCATION_ID = 65_000_000_001
EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)

_FIRST = ["Ava", "Liam", "Noah", "Emma", "Mia", "Lucas", "Zoe", "Omar", "Priya", "Kenji", "Sofia", "Mateo"]
_LAST = ["Nguyen", "Garcia", "Smith", "Okafor", "Rossi", "Tanaka", "Kowalski", "Haddad", "Silva", "Brown"]
_ADDRESSES = [
    ("500 Terry Francine St", "San Francisco", "California", "CA", "94158"),
    ("1600 Main St", "Austin", "Texas", "TX", "78701"),
    ("77 Massachusetts Ave", "Cambridge", "Massachusetts", "MA", "02139"),
    ("410 Terry Ave N", "Seattle", "Washington", "WA", "98109"),
    ("233 S Wacker Dr", "Chicago", "Illinois", "IL", "60606"),
    ("350 5th Ave", "New York", "New York", "NY", "10118"),
]
_ADJECTIVES = ["Classic", "Organic", "Merino", "Recycled", "Heavyweight", "Slim", "Trail", "Everyday"]
_NOUNS = ["Tee", "Hoodie", "Beanie", "Tote", "Sock Pack", "Cap", "Jacket", "Water Bottle"]
_SIZES = ["S", "M", "L", "XL"]
CENT = Decimal("0.01")


def money(value: Decimal | int | str) -> str:
    """Shopify's money format: a string with exactly two decimals."""
    return str(Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP))


def money_set(amount: Decimal | str, currency: str) -> dict[str, Any]:
    m = {"amount": money(amount), "currency_code": currency}
    return {"shop_money": m, "presentment_money": dict(m)}


def shopify_time(moment: datetime) -> str:
    """Shopify renders timestamps in ISO 8601 with the shop's UTC offset."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "-00:00")


def make_product(seed: int, *, product_id: int | None = None, variant_count: int = 2) -> dict[str, Any]:
    """One active product with `variant_count` size variants; SKUs are `CD-{seed:05d}-{size}`."""
    rng = random.Random(f"product:{seed}")
    pid = product_id if product_id is not None else PRODUCT_ID_BASE + seed
    title = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {seed}"
    price = Decimal(rng.randrange(900, 12_900)) / 100
    created = shopify_time(EPOCH - timedelta(days=90) + timedelta(minutes=seed))
    variants = []
    for i, size in enumerate(_SIZES[: max(1, min(variant_count, len(_SIZES)))]):
        vid = VARIANT_ID_BASE + seed * 10 + i
        variants.append(
            {
                "id": vid,
                "product_id": pid,
                "title": size,
                "price": money(price),
                "compare_at_price": None,
                "sku": f"CD-{seed:05d}-{size}",
                "position": i + 1,
                "inventory_policy": "deny",
                "fulfillment_service": "manual",
                "inventory_management": "shopify",
                "option1": size,
                "option2": None,
                "option3": None,
                "taxable": True,
                "barcode": f"0{rng.randrange(10**11, 10**12)}",
                "grams": 250,
                "weight": 0.25,
                "weight_unit": "kg",
                "inventory_item_id": INVENTORY_ITEM_ID_BASE + seed * 10 + i,
                "inventory_quantity": rng.randrange(0, 200),
                "requires_shipping": True,
                "created_at": created,
                "updated_at": created,
                "admin_graphql_api_id": f"gid://shopify/ProductVariant/{vid}",
            }
        )
    return {
        "id": pid,
        "title": title,
        "body_html": f"<p>{title}</p>",
        "vendor": "Crossdock Supply Co",
        "product_type": title.split(" ")[1],
        "handle": title.lower().replace(" ", "-"),
        "status": "active",
        "tags": "",
        "created_at": created,
        "updated_at": created,
        "published_at": created,
        "options": [
            {"id": pid + 1, "product_id": pid, "name": "Size", "position": 1, "values": [v["title"] for v in variants]}
        ],
        "variants": variants,
        "images": [],
        "admin_graphql_api_id": f"gid://shopify/Product/{pid}",
    }


def make_catalog(count: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """`count` products whose seeds are `seed .. seed+count-1`."""
    return [make_product(seed + i) for i in range(count)]


@functools.cache
def _default_pool() -> tuple[dict[str, Any], ...]:
    # `product_title` is not a Shopify variant field; the generator only uses it to title lines.
    return tuple({**v, "product_title": p["title"]} for p in make_catalog(50) for v in p["variants"])


def _address(rng: random.Random, first: str, last: str) -> dict[str, Any]:
    street, city, province, code, zip_code = rng.choice(_ADDRESSES)
    return {
        "first_name": first,
        "last_name": last,
        "name": f"{first} {last}",
        "company": None,
        "address1": street,
        "address2": "",
        "city": city,
        "province": province,
        "province_code": code,
        "zip": zip_code,
        "country": "United States",
        "country_code": "US",
        "phone": f"+1555{rng.randrange(1_000_000, 9_999_999)}",
        "latitude": None,
        "longitude": None,
    }


def make_order(
    seed: int,
    *,
    order_id: int | None = None,
    number: int | None = None,
    created_at: datetime | None = None,
    currency: str = "USD",
    variants: Sequence[Mapping[str, Any]] | None = None,
    line_count: int | None = None,
    discount_percent: int | None = None,
    tax_rate: str = "0.0825",
    shipping: str | None = None,
    financial_status: str = "paid",
    email: str | None = None,
) -> dict[str, Any]:
    """A realistic Shopify order, identical for the same arguments.

    `variants` are variant dicts (as produced by `make_product`); by default lines are drawn from
    a 50-product catalog. `discount_percent` adds a discount code allocated across the lines
    (default: every fourth order gets 10%). Totals are internally consistent to the cent:
    total_price = subtotal_price + shipping + total_tax, subtotal = line items - discounts.
    """
    rng = random.Random(f"order:{seed}")
    oid = order_id if order_id is not None else ORDER_ID_BASE + seed
    num = number if number is not None else 1001 + seed
    created = created_at or (EPOCH + timedelta(seconds=37 * seed))
    pool = list(variants) if variants else list(_default_pool())
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    customer_email = email or f"{first.lower()}.{last.lower()}{seed}@example.com"
    address = _address(rng, first, last)
    if discount_percent is None and seed % 4 == 0:
        discount_percent = 10
    rate = Decimal(tax_rate)

    lines: list[dict[str, Any]] = []
    picks = rng.sample(pool, k=min(len(pool), line_count or rng.randint(1, 4)))
    quantities = [rng.randint(1, 3) for _ in picks]
    gross = [Decimal(v["price"]) * q for v, q in zip(picks, quantities, strict=True)]
    total_gross = sum(gross, Decimal(0))
    allocations = _allocate(total_gross, gross, discount_percent)
    for i, (variant, qty, line_gross, alloc) in enumerate(zip(picks, quantities, gross, allocations, strict=True)):
        line_tax = ((line_gross - alloc) * rate).quantize(CENT, rounding=ROUND_HALF_UP)
        lid = LINE_ITEM_ID_BASE + seed * 10 + i
        lines.append(
            {
                "id": lid,
                "admin_graphql_api_id": f"gid://shopify/LineItem/{lid}",
                "variant_id": variant["id"],
                "product_id": variant["product_id"],
                "sku": variant["sku"],
                "title": variant.get("product_title") or variant["sku"].rsplit("-", 1)[0],
                "variant_title": variant["title"],
                "name": f"{variant.get('product_title') or variant['sku']} - {variant['title']}",
                "vendor": "Crossdock Supply Co",
                "quantity": qty,
                "current_quantity": qty,
                "fulfillable_quantity": qty,
                "fulfillment_status": None,
                "fulfillment_service": "manual",
                "price": money(variant["price"]),
                "price_set": money_set(variant["price"], currency),
                "grams": variant.get("grams", 250),
                "requires_shipping": True,
                "taxable": True,
                "gift_card": False,
                "product_exists": True,
                "total_discount": "0.00",
                "total_discount_set": money_set("0", currency),
                "discount_allocations": (
                    [
                        {
                            "amount": money(alloc),
                            "amount_set": money_set(alloc, currency),
                            "discount_application_index": 0,
                        }
                    ]
                    if alloc
                    else []
                ),
                "tax_lines": [
                    {
                        "title": "State Tax",
                        "price": money(line_tax),
                        "rate": float(rate),
                        "price_set": money_set(line_tax, currency),
                    }
                ],
                "properties": [],
                "duties": [],
            }
        )
    total_discounts = sum(allocations, Decimal(0))
    subtotal = total_gross - total_discounts
    total_tax = sum((Decimal(li["tax_lines"][0]["price"]) for li in lines), Decimal(0))
    ship = Decimal(shipping) if shipping is not None else (Decimal(0) if subtotal >= 100 else Decimal("7.95"))
    total = subtotal + ship + total_tax
    code = f"SAVE{discount_percent}" if discount_percent else None
    stamp = shopify_time(created)
    customer_id = CUSTOMER_ID_BASE + seed % 5000
    return {
        "id": oid,
        "admin_graphql_api_id": f"gid://shopify/Order/{oid}",
        "name": f"#{num}",
        "order_number": num,
        "number": num - 1000,
        "token": f"{rng.getrandbits(128):032x}",
        "email": customer_email,
        "contact_email": customer_email,
        "phone": None,
        "created_at": stamp,
        "updated_at": stamp,
        "processed_at": stamp,
        "closed_at": None,
        "cancelled_at": None,
        "cancel_reason": None,
        "confirmed": True,
        "test": False,
        "currency": currency,
        "presentment_currency": currency,
        "financial_status": financial_status,
        "fulfillment_status": None,
        "gateway": "shopify_payments",
        "payment_gateway_names": ["shopify_payments"],
        "source_name": "web",
        "taxes_included": False,
        "tags": "",
        "note": None,
        "note_attributes": [],
        "total_price": money(total),
        "subtotal_price": money(subtotal),
        "total_tax": money(total_tax),
        "total_discounts": money(total_discounts),
        "total_line_items_price": money(total_gross),
        "total_weight": sum(li["grams"] * li["quantity"] for li in lines),
        "total_price_set": money_set(total, currency),
        "subtotal_price_set": money_set(subtotal, currency),
        "total_tax_set": money_set(total_tax, currency),
        "total_discounts_set": money_set(total_discounts, currency),
        "total_line_items_price_set": money_set(total_gross, currency),
        "total_shipping_price_set": money_set(ship, currency),
        "current_total_price": money(total),
        "discount_codes": [{"code": code, "amount": money(total_discounts), "type": "percentage"}] if code else [],
        "discount_applications": (
            [
                {
                    "type": "discount_code",
                    "code": code,
                    "title": code,
                    "description": None,
                    "value": f"{discount_percent}.0",
                    "value_type": "percentage",
                    "allocation_method": "across",
                    "target_selection": "all",
                    "target_type": "line_item",
                }
            ]
            if code
            else []
        ),
        "tax_lines": [
            {
                "title": "State Tax",
                "price": money(total_tax),
                "rate": float(rate),
                "price_set": money_set(total_tax, currency),
            }
        ],
        "shipping_lines": [
            {
                "id": oid + 7,
                "code": "Standard" if ship else "Free Shipping",
                "title": "Standard Shipping" if ship else "Free Shipping",
                "source": "shopify",
                "price": money(ship),
                "price_set": money_set(ship, currency),
                "discounted_price": money(ship),
                "discounted_price_set": money_set(ship, currency),
                "tax_lines": [],
                "discount_allocations": [],
            }
        ],
        "line_items": lines,
        "customer": {
            "id": customer_id,
            "email": customer_email,
            "first_name": first,
            "last_name": last,
            "phone": address["phone"],
            "currency": currency,
            "tags": "",
            "tax_exempt": False,
            "verified_email": True,
            "created_at": shopify_time(EPOCH - timedelta(days=30)),
            "updated_at": stamp,
            "default_address": {**address, "id": customer_id + 1, "customer_id": customer_id, "default": True},
            "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
        },
        "billing_address": dict(address),
        "shipping_address": dict(address),
        "fulfillments": [],
        "refunds": [],
    }


def _allocate(total: Decimal, gross: list[Decimal], percent: int | None) -> list[Decimal]:
    """Split a percentage discount across lines by value; the last line takes the rounding cent."""
    if not percent or total == 0:
        return [Decimal(0) for _ in gross]
    amount = (total * percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    shares = [(g / total * amount).quantize(CENT, rounding=ROUND_HALF_UP) for g in gross]
    shares[-1] += amount - sum(shares, Decimal(0))
    return shares
