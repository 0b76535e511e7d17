"""Shopify engine actions: read orders, write the ERP number back, inventory, fulfillments, refunds, payouts.

Idempotency: reads are pure; `update_variant` sets an absolute price; `update_order` merges by attribute name and tag (a replay changes
nothing); `set_inventory` sets an absolute level; `create_fulfillment` recognises its earlier
fulfillment by tracking number (without one, `already_fulfilled: skip` answers a fulfilled order's
fulfillment); `create_refund` marks the refund note with a digest of its key and
finds it again. `adjust_inventory` is relative: the engine's effect ledger is its only guard.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from crossdock.connectors.actions.pool import PooledClient, RateBudget
from crossdock.connectors.actions.spec import ActionInput, ActionOutput, ConnectorAction, digest
from crossdock.connectors.builtin import ShopifyConfig, ShopifySecrets
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.shopify.client import ShopifyClient
from crossdock.engine.actions import ActionContext

SYSTEM = "shopify"


def build_client(config: Any, secrets: Any, *, acquire: Any, budget: RateBudget) -> ShopifyClient:
    """The shop's client; its REST pacer mirrors the connection's budget (the shop's bucket)."""
    assert isinstance(config, ShopifyConfig) and isinstance(secrets, ShopifySecrets)
    return ShopifyClient(
        config.base_url or f"https://{config.shop_domain}",
        secrets.access_token,
        api_version=config.api_version,
        acquire=acquire,
        rest_capacity=max(2, int(budget.burst)),
        rest_leak_rate=budget.rate_per_s,
    )


def _shop(conn: PooledClient) -> ShopifyClient:
    assert isinstance(conn.client, ShopifyClient)
    return conn.client


# -- get_order --------------------------------------------------------------------------------------
class OrderRef(ActionInput):
    order_id: int = Field(gt=0, description="Shopify order id (not the `#1001` name).")


class OrderOut(ActionOutput):
    order: dict[str, Any]


async def get_order(ctx: ActionContext, conn: PooledClient, data: OrderRef) -> OrderOut:
    return OrderOut(order=await _shop(conn).get_order(data.order_id))


# -- update_order (ERP write-back) ----------------------------------------------------------------
class UpdateOrderIn(OrderRef):
    note_attributes: dict[str, str] = Field(
        default_factory=dict, description="Attributes to set by name (others are kept), e.g. {'erp_order': 'SO-1'}."
    )
    add_tags: list[str] = Field(default_factory=list, description="Tags to add (existing tags are kept).")
    note: str | None = Field(None, description="Replaces the order note when given.")


class UpdateOrderOut(ActionOutput):
    order_id: int
    note_attributes: list[dict[str, Any]]
    tags: list[str]
    changed: bool


def _tags(value: Any) -> list[str]:
    return [t.strip() for t in str(value or "").split(",") if t.strip()]


async def update_order(ctx: ActionContext, conn: PooledClient, data: UpdateOrderIn) -> UpdateOrderOut:
    shop = _shop(conn)
    order = await shop.get_order(data.order_id)
    attrs = [{"name": str(a.get("name")), "value": a.get("value")} for a in order.get("note_attributes") or []]
    merged = list(attrs)
    for name, value in data.note_attributes.items():
        found = next((a for a in merged if a["name"] == name), None)
        if found is None:
            merged.append({"name": name, "value": value})
        else:
            found["value"] = value
    tags = _tags(order.get("tags"))
    new_tags = tags + [t for t in dict.fromkeys(data.add_tags) if t not in tags]
    changes: dict[str, Any] = {}
    if merged != attrs:
        changes["note_attributes"] = merged
    if new_tags != tags:
        changes["tags"] = ", ".join(new_tags)
    if data.note is not None and data.note != order.get("note"):
        changes["note"] = data.note
    if changes:
        order = await shop.update_order(data.order_id, changes)
    return UpdateOrderOut(
        order_id=data.order_id,
        note_attributes=list(order.get("note_attributes") or []),
        tags=_tags(order.get("tags")),
        changed=bool(changes),
    )


# -- inventory --------------------------------------------------------------------------------------
class InventorySetIn(ActionInput):
    inventory_item_id: int = Field(gt=0)
    location_id: int = Field(gt=0)
    available: int


class InventoryAdjustIn(ActionInput):
    inventory_item_id: int = Field(gt=0)
    location_id: int = Field(gt=0)
    delta: int = Field(description="Relative change; not naturally idempotent.")


class InventoryLevelOut(ActionOutput):
    inventory_item_id: int
    location_id: int
    available: int
    updated_at: str | None = None


def _level(level: dict[str, Any]) -> InventoryLevelOut:
    return InventoryLevelOut(
        inventory_item_id=int(level["inventory_item_id"]),
        location_id=int(level["location_id"]),
        available=int(level["available"]),
        updated_at=level.get("updated_at"),
    )


async def set_inventory(ctx: ActionContext, conn: PooledClient, data: InventorySetIn) -> InventoryLevelOut:
    return _level(await _shop(conn).set_inventory_level(data.inventory_item_id, data.location_id, data.available))


async def adjust_inventory(ctx: ActionContext, conn: PooledClient, data: InventoryAdjustIn) -> InventoryLevelOut:
    return _level(await _shop(conn).adjust_inventory_level(data.inventory_item_id, data.location_id, data.delta))


# -- fulfillment ------------------------------------------------------------------------------------
class LineQuantity(BaseModel):
    line_item_id: int = Field(gt=0)
    quantity: int = Field(gt=0)


class FulfillmentIn(OrderRef):
    tracking_number: str | None = Field(None, max_length=200)
    tracking_company: str | None = Field(None, max_length=200)
    tracking_url: str | None = Field(None, max_length=2000)
    notify_customer: bool = False
    line_items: list[LineQuantity] | None = Field(None, description="Lines to fulfil; default: all that remain.")
    already_fulfilled: Literal["fail", "skip"] | None = Field(
        None,
        description="When nothing is left to fulfil: `fail` (default, fulfillment_state) or `skip` — answer the "
        "order's latest successful fulfillment (created false) if the order is fulfilled. `skip` is how a "
        "shipment without tracking (Business Central) is exported once: it cannot be recognised by tracking.",
    )


class FulfillmentOut(ActionOutput):
    fulfillment_id: int
    order_id: int
    status: str | None
    tracking_number: str | None
    created: bool


def _fulfillment_groups(fos: list[dict[str, Any]], wanted: dict[int, int] | None) -> list[dict[str, Any]]:
    groups = []
    for fo in fos:
        if fo.get("status") not in ("open", "in_progress"):
            continue
        items = []
        for li in fo.get("line_items") or []:
            left = int(li.get("fulfillable_quantity") or 0)
            if wanted is not None:
                take = min(left, wanted.get(int(li.get("line_item_id") or 0), 0))
                if take:
                    wanted[int(li["line_item_id"])] -= take
            else:
                take = left
            if take > 0:
                items.append({"id": li["id"], "quantity": take})
        if items:
            groups.append({"fulfillment_order_id": fo["id"], "fulfillment_order_line_items": items})
    return groups


async def create_fulfillment(ctx: ActionContext, conn: PooledClient, data: FulfillmentIn) -> FulfillmentOut:
    shop = _shop(conn)
    if data.tracking_number:
        order = await shop.get_order(data.order_id)
        for done in order.get("fulfillments") or []:
            if done.get("tracking_number") == data.tracking_number:
                return FulfillmentOut(
                    fulfillment_id=int(done["id"]), order_id=data.order_id, status=done.get("status"),
                    tracking_number=data.tracking_number, created=False,
                )  # fmt: skip
    wanted = None if data.line_items is None else {li.line_item_id: li.quantity for li in data.line_items}
    groups = _fulfillment_groups(await shop.get_fulfillment_orders(data.order_id), wanted)
    if not groups and data.already_fulfilled == "skip":
        order = await shop.get_order(data.order_id)
        done = [f for f in order.get("fulfillments") or [] if f.get("status") == "success"]
        if order.get("fulfillment_status") == "fulfilled" and done:
            return FulfillmentOut(
                fulfillment_id=int(done[-1]["id"]), order_id=data.order_id, status=done[-1].get("status"),
                tracking_number=done[-1].get("tracking_number"), created=False,
            )  # fmt: skip
    if not groups:
        raise ConnectorError(
            f"Shopify order {data.order_id} has nothing left to fulfil (no open fulfillment order lines).",
            kind=FailureKind.DATA,
            category=FailureCategory.FULFILLMENT_STATE,
            system=SYSTEM,
            vendor_code="nothing_to_fulfil",
        )
    made = await shop.create_fulfillment(
        groups,
        tracking_number=data.tracking_number,
        tracking_company=data.tracking_company,
        tracking_url=data.tracking_url,
        notify_customer=data.notify_customer,
    )
    return FulfillmentOut(
        fulfillment_id=int(made["id"]), order_id=data.order_id, status=made.get("status"),
        tracking_number=made.get("tracking_number"), created=True,
    )  # fmt: skip


# -- refunds ----------------------------------------------------------------------------------------
class RefundLine(BaseModel):
    line_item_id: int = Field(gt=0)
    quantity: int = Field(gt=0)
    restock_type: Literal["no_restock", "cancel", "return"] = "no_restock"
    location_id: int | None = None


class RefundTransaction(BaseModel):
    amount: Decimal = Field(gt=0, decimal_places=2)
    gateway: str | None = None
    parent_id: int | None = None


class RefundIn(OrderRef):
    refund_line_items: list[RefundLine] = Field(default_factory=list)
    transactions: list[RefundTransaction] = Field(default_factory=list)
    note: str | None = Field(None, max_length=500)
    refund_key: str | None = Field(
        None, max_length=200, description="Business key of this refund (e.g. the return id); default: the step's key."
    )


class RefundOut(ActionOutput):
    refund_id: int
    order_id: int
    amount: str
    created: bool


def _refund_out(refund: dict[str, Any], order_id: int, created: bool) -> RefundOut:
    total = sum((Decimal(str(t.get("amount") or 0)) for t in refund.get("transactions") or []), Decimal(0))
    return RefundOut(refund_id=int(refund["id"]), order_id=order_id, amount=f"{total:.2f}", created=created)


async def create_refund(ctx: ActionContext, conn: PooledClient, data: RefundIn) -> RefundOut:
    shop = _shop(conn)
    marker = f"[crossdock:{digest(data.refund_key or ctx.idempotency_key, 16)}]"
    order = await shop.get_order(data.order_id)
    for refund in order.get("refunds") or []:
        if marker in str(refund.get("note") or ""):
            return _refund_out(refund, data.order_id, created=False)
    body: dict[str, Any] = {
        "note": f"{data.note} {marker}" if data.note else marker,
        "refund_line_items": [li.model_dump(exclude_none=True) for li in data.refund_line_items],
        "transactions": [{"kind": "refund", **t.model_dump(mode="json", exclude_none=True)} for t in data.transactions],
    }
    return _refund_out(await shop.create_refund(data.order_id, body), data.order_id, created=True)


# -- variants (price release) -------------------------------------------------------------------------
class VariantUpdateIn(ActionInput):
    variant_id: int = Field(gt=0)
    price: Decimal | None = Field(None, ge=0, decimal_places=2, description="New price (absolute).")
    compare_at_price: Decimal | None = Field(None, ge=0, decimal_places=2)


class VariantOut(ActionOutput):
    variant_id: int
    price: str
    compare_at_price: str | None
    changed: bool


async def update_variant(ctx: ActionContext, conn: PooledClient, data: VariantUpdateIn) -> VariantOut:
    shop = _shop(conn)
    wanted = {
        k: f"{v:.2f}" for k, v in (("price", data.price), ("compare_at_price", data.compare_at_price)) if v is not None
    }
    if not wanted:
        raise ConnectorError(
            "shopify.update_variant needs a price or a compare_at_price.",
            kind=FailureKind.CONFIG, category=FailureCategory.VALIDATION, system=SYSTEM,
        )  # fmt: skip
    current = await shop.get_variant(data.variant_id)
    changes = {k: v for k, v in wanted.items() if _price(current.get(k)) != v}
    if changes:
        current = await shop.update_variant(data.variant_id, changes)
    return VariantOut(
        variant_id=data.variant_id, price=str(current.get("price")),
        compare_at_price=None if current.get("compare_at_price") is None else str(current["compare_at_price"]),
        changed=bool(changes),
    )  # fmt: skip


def _price(value: Any) -> str | None:
    return None if value in (None, "") else f"{Decimal(str(value)):.2f}"


# -- payouts ----------------------------------------------------------------------------------------
class PayoutsIn(ActionInput):
    pass


class PayoutsOut(ActionOutput):
    payouts: list[dict[str, Any]]


async def list_payouts(ctx: ActionContext, conn: PooledClient, data: PayoutsIn) -> PayoutsOut:
    return PayoutsOut(payouts=await _shop(conn).list_payouts())


ACTIONS = [
    ConnectorAction(
        "shopify.get_order", SYSTEM, OrderRef, OrderOut, get_order, "pure read", "Read one order.", effect=False
    ),
    ConnectorAction(
        "shopify.update_order", SYSTEM, UpdateOrderIn, UpdateOrderOut, update_order,
        "order id; attributes merged by name and tags by value, so a replay is a no-op",
        "Write the ERP reference back to an order (note attributes, tags, note).",
    ),
    ConnectorAction(
        "shopify.set_inventory", SYSTEM, InventorySetIn, InventoryLevelOut, set_inventory,
        "absolute level per (inventory item, location)", "Set the available quantity at a location.",
    ),
    ConnectorAction(
        "shopify.adjust_inventory", SYSTEM, InventoryAdjustIn, InventoryLevelOut, adjust_inventory,
        "engine effect ledger only (relative change); prefer shopify.set_inventory",
        "Change the available quantity at a location by a delta.",
    ),
    ConnectorAction(
        "shopify.create_fulfillment", SYSTEM, FulfillmentIn, FulfillmentOut, create_fulfillment,
        "order id + tracking number (an existing fulfillment with that tracking number is returned); without "
        "tracking, `already_fulfilled: skip` returns a fulfilled order's latest fulfillment",
        "Fulfil an order's open fulfillment orders, with tracking when given.",
    ),
    ConnectorAction(
        "shopify.create_refund", SYSTEM, RefundIn, RefundOut, create_refund,
        "order id + refund_key (default: the step's idempotency key), kept as a marker in the refund note",
        "Refund lines and/or an amount of an order.",
    ),
    ConnectorAction(
        "shopify.update_variant", SYSTEM, VariantUpdateIn, VariantOut, update_variant,
        "absolute price per variant (read first; an equal price is not written again)",
        "Set a variant's price (and compare-at price).",
    ),
    ConnectorAction(
        "shopify.list_payouts", SYSTEM, PayoutsIn, PayoutsOut, list_payouts, "pure read",
        "List Shopify Payments payouts.", effect=False,
    ),
]  # fmt: skip
