"""The demo's order book: which merchant sells what to whom, and which orders carry an injected problem.

`plan_order(i, ...)` is a pure function of the traffic seed and the order's index, so a demo day
(and the end-to-end test) replays exactly. Each problem says which case it should become: the
category, the team that owns it, and how a person fixes it.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from crossdock.connectors.sandbox.shopify_orders import ORDER_ID_BASE, make_order, money
from crossdock.demo.sandbox import B2B_CUSTOMERS, CREDIT_HOLD_CUSTOMER, B2BCustomer, DemoCatalog

LEGACY_PREFIX = "LEGACY-"  # an old SKU Shopify still sends; the fix maps it to the ERP item
PRICE_MARKUP = Decimal("1.25")
ABUSIVE_DISCOUNTS = (45, 50, 60)

# problem -> (case category, owning team, what settles it)
PROBLEMS: dict[str, tuple[str | None, str | None, str]] = {
    "unknown_sku": ("sku_not_found", "catalog", "map the SKU in the instance's sku_map, then retry the case"),
    "price_mismatch": ("price_mismatch", "finance", "fix the price in Shopify or the ERP, then replay"),
    "insufficient_inventory": ("insufficient_inventory", "operations", "receive stock in the ERP, then retry"),
    "credit_hold": ("credit_hold", "key-accounts", "approve the credit release, or reject it (a case opens)"),
    "discount_abuse": ("discount_anomaly", "loss-prevention", "approve the discount, or reject it (a case opens)"),
    "throttling": (None, None, "nothing: the storm passes and the retries import the order"),
}
MERCHANT_PROBLEMS = {
    "aurora": ("unknown_sku", "price_mismatch", "insufficient_inventory", "discount_abuse", "throttling"),
    "cobalt": ("unknown_sku", "price_mismatch", "credit_hold", "discount_abuse", "throttling"),
}
ORDER_EVENT_PREFIX = "demo-order-"  # + the Shopify order id: the webhook's event id
APPROVAL_PROBLEMS = frozenset({"credit_hold", "discount_abuse"})


@dataclass(frozen=True)
class OrderPlan:
    """One order the traffic generator will place, and what should become of it."""

    index: int
    merchant: str  # aurora | cobalt
    problem: str | None
    duplicate: bool  # delivered twice with the same event id
    order: dict[str, Any]

    @property
    def order_id(self) -> str:
        return str(self.order["id"])

    @property
    def event_id(self) -> str:
        return f"{ORDER_EVENT_PREFIX}{self.order['id']}"

    @property
    def expected_category(self) -> str | None:
        return PROBLEMS[self.problem][0] if self.problem else None

    @property
    def expected_team(self) -> str | None:
        team = PROBLEMS[self.problem][1] if self.problem else None
        if self.problem == "credit_hold" and self.merchant != "cobalt":
            return "finance"
        return team

    @property
    def reaches_erp(self) -> bool:
        """Whether the order lands in the ERP without anyone's help."""
        return self.problem in (None, "throttling")

    def sku_fix(self) -> dict[str, str]:
        """The sku_map entries that settle an unknown_sku order."""
        return {
            line["sku"]: line["sku"][len(LEGACY_PREFIX) :]
            for line in self.order["line_items"]
            if line["sku"].startswith(LEGACY_PREFIX)
        }


def _b2b(order: dict[str, Any], customer: B2BCustomer) -> None:
    """Make the order a wholesale account's (the customer fields only; totals do not change)."""
    first, _, last = customer.company.partition(" ")
    order["email"] = order["contact_email"] = customer.email
    order["customer"].update(id=customer.shopify_id, email=customer.email, first_name=first, last_name=last)
    for address in (order["shipping_address"], order["billing_address"]):
        address["company"] = customer.company


def plan_order(
    index: int,
    catalog: DemoCatalog,
    *,
    seed: int = 7,
    problem_rate: float = 0.06,
    duplicate_rate: float = 0.03,
    id_offset: int = 0,
) -> OrderPlan:
    """The `index`-th order of the demo with traffic seed `seed` (ids shifted by `id_offset`)."""
    rng = random.Random(f"crossdock-demo:{seed}:{index}")
    merchant = "aurora" if rng.random() < 0.6 else "cobalt"
    problem = rng.choice(MERCHANT_PROBLEMS[merchant]) if rng.random() < problem_rate else None
    duplicate = rng.random() < duplicate_rate
    pool = catalog.aurora if merchant == "aurora" else catalog.cobalt
    picks = [dict(v) for v in rng.sample(pool, k=rng.randint(1, 3))]
    discount: int | None = None
    if problem == "unknown_sku":
        picks[0]["sku"] = LEGACY_PREFIX + picks[0]["sku"]
    elif problem == "price_mismatch":
        picks[0]["price"] = money(Decimal(picks[0]["price"]) * PRICE_MARKUP)
    elif problem == "insufficient_inventory":
        picks[0] = dict(rng.choice(catalog.aurora_out_of_stock))
    elif problem == "discount_abuse":
        discount = rng.choice(ABUSIVE_DISCOUNTS)
    elif rng.random() < 0.25:
        discount = 10
    order_seed = index + 1
    number = 1001 + id_offset + index
    order = make_order(
        order_seed,
        order_id=ORDER_ID_BASE + id_offset + index,
        number=number,
        variants=picks,
        line_count=len(picks),
        discount_percent=discount or 0,
    )
    order = copy.deepcopy(order)
    if merchant == "cobalt":
        customer = CREDIT_HOLD_CUSTOMER if problem == "credit_hold" else rng.choice(B2B_CUSTOMERS)
        _b2b(order, customer)
    order["name"] = f"#{'A' if merchant == 'aurora' else 'C'}{number}"
    return OrderPlan(index=index, merchant=merchant, problem=problem, duplicate=duplicate, order=order)
