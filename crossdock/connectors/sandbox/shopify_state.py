"""The Shopify simulator's in-memory shops: orders, catalog, inventory, fulfillment and refunds.

`ShopifySimulator` is the object tests and the sandbox server hold. It owns one `ShopStore` per
shop domain (selected by access token), the throttles, the fault plan and the webhook sender.
Operations raise `ShopifyAPIError` carrying the status and the body the real API would return.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from crossdock.connectors.sandbox.faults import FaultState
from crossdock.connectors.sandbox.shopify_delivery import DEFAULT_RETRY_DELAYS, WebhookDelivery, WebhookSender
from crossdock.connectors.sandbox.shopify_limits import Clock, CostBucket, LeakyBucket, RateRecorder
from crossdock.connectors.sandbox.shopify_orders import DEFAULT_LOCATION_ID, money, shopify_time

DEFAULT_SHOP = "crossdock-sandbox.myshopify.com"
DEFAULT_TOKEN = "shpat_sandbox_0000000000000000"
DEFAULT_APP_SECRET = "sandbox-app-secret"
API_VERSION = "2025-07"
NOT_FOUND = {"errors": "Not Found"}


class ShopifyAPIError(Exception):
    """An error response exactly as the simulated API renders it."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def blank(*fields: str) -> ShopifyAPIError:
    """Shopify's 422 for missing required attributes."""
    return ShopifyAPIError(422, {"errors": {f: ["can't be blank"] for f in fields}})


class ShopStore:
    """One shop's data and throttles. Guard every access with `lock`."""

    def __init__(self, domain: str, sim: ShopifySimulator) -> None:
        self.domain = domain
        self.lock = threading.RLock()
        self.orders: dict[int, dict[str, Any]] = {}
        self.products: dict[int, dict[str, Any]] = {}
        self.variant_product: dict[int, int] = {}
        self.inventory: dict[tuple[int, int], dict[str, Any]] = {}
        self.fulfillment_orders: dict[int, dict[str, Any]] = {}
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.rest_bucket = LeakyBucket(sim.rest_capacity, sim.rest_leak_rate, sim.clock)
        self.graphql_bucket = CostBucket(sim.graphql_maximum, sim.graphql_restore_rate, sim.clock)
        self.rest_rate = RateRecorder(1.0, sim.clock)
        self.graphql_requests = 0
        self.graphql_throttled = 0
        self._ids = itertools.count(9_000_000_000_000)

    def next_id(self) -> int:
        return next(self._ids)

    # ----- catalog and inventory ---------------------------------------------------------------
    def add_product(self, product: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(product))
        with self.lock:
            self.products[stored["id"]] = stored
            for v in stored.get("variants", []):
                self.variant_product[v["id"]] = stored["id"]
                key = (v["inventory_item_id"], DEFAULT_LOCATION_ID)
                self.inventory.setdefault(key, self._level(key[0], key[1], int(v.get("inventory_quantity") or 0)))
        return stored

    def variant(self, variant_id: int) -> dict[str, Any]:
        with self.lock:
            pid = self.variant_product.get(variant_id)
            if pid is None:
                raise ShopifyAPIError(404, NOT_FOUND)
            return next(v for v in self.products[pid]["variants"] if v["id"] == variant_id)

    def update_variant(self, variant_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            variant = self.variant(variant_id)
            if "price" in changes:
                try:
                    price = Decimal(str(changes["price"]))
                except ArithmeticError:
                    raise ShopifyAPIError(422, {"errors": {"price": ["is not a number"]}}) from None
                if price < 0:
                    raise ShopifyAPIError(422, {"errors": {"price": ["must be greater than or equal to 0"]}})
                variant["price"] = money(price)
            for key in ("compare_at_price", "sku", "barcode", "title", "option1", "taxable", "inventory_policy"):
                if key in changes:
                    variant[key] = changes[key]
            variant["updated_at"] = shopify_time(datetime.now(UTC))
            self.products[variant["product_id"]]["updated_at"] = variant["updated_at"]
            return copy.deepcopy(variant)

    def _level(self, item_id: int, location_id: int, available: int) -> dict[str, Any]:
        return {
            "inventory_item_id": item_id,
            "location_id": location_id,
            "available": available,
            "updated_at": shopify_time(datetime.now(UTC)),
            "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={item_id}",
        }

    def _known_item(self, item_id: int) -> None:
        if not any(key[0] == item_id for key in self.inventory):
            raise ShopifyAPIError(422, {"errors": [f"Inventory item {item_id} does not exist"]})

    def set_inventory(self, item_id: int, location_id: int, available: int) -> dict[str, Any]:
        with self.lock:
            self._known_item(item_id)
            level = self._level(item_id, location_id, available)
            self.inventory[(item_id, location_id)] = level
            return dict(level)

    def adjust_inventory(self, item_id: int, location_id: int, delta: int) -> dict[str, Any]:
        with self.lock:
            level = self.inventory.get((item_id, location_id))
            if level is None:
                self._known_item(item_id)
                raise ShopifyAPIError(422, {"errors": ["Inventory item is not stocked at the location"]})
            return self.set_inventory(item_id, location_id, int(level["available"]) + delta)

    def inventory_levels(self, item_ids: set[int] | None, location_ids: set[int] | None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                dict(level)
                for (item, loc), level in sorted(self.inventory.items())
                if (item_ids is None or item in item_ids) and (location_ids is None or loc in location_ids)
            ]

    # ----- orders ------------------------------------------------------------------------------
    def add_order(self, order: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(order))
        with self.lock:
            self.orders[stored["id"]] = stored
            fo_id = self.next_id()
            self.fulfillment_orders[fo_id] = {
                "id": fo_id,
                "order_id": stored["id"],
                "shop_id": 1,
                "assigned_location_id": DEFAULT_LOCATION_ID,
                "request_status": "unsubmitted",
                "status": "open",
                "supported_actions": ["create_fulfillment", "move"],
                "destination": stored.get("shipping_address"),
                "line_items": [
                    {
                        "id": self.next_id(),
                        "shop_id": 1,
                        "fulfillment_order_id": fo_id,
                        "line_item_id": li["id"],
                        "inventory_item_id": self._inventory_item_for(li.get("variant_id")),
                        "quantity": li["quantity"],
                        "fulfillable_quantity": li["quantity"],
                        "variant_id": li.get("variant_id"),
                    }
                    for li in stored.get("line_items", [])
                    if li.get("requires_shipping", True)
                ],
                "fulfill_at": None,
                "created_at": stored.get("created_at"),
                "updated_at": stored.get("created_at"),
            }
        return stored

    def _inventory_item_for(self, variant_id: int | None) -> int | None:
        pid = self.variant_product.get(variant_id or -1)
        if pid is None:
            return None
        return next(v["inventory_item_id"] for v in self.products[pid]["variants"] if v["id"] == variant_id)

    def order(self, order_id: int) -> dict[str, Any]:
        with self.lock:
            found = self.orders.get(order_id)
            if found is None:
                raise ShopifyAPIError(404, NOT_FOUND)
            return found

    def update_order(self, order_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            order = self.order(order_id)
            if "note_attributes" in changes:
                attrs = changes["note_attributes"]
                if not isinstance(attrs, list) or not all(isinstance(a, dict) and "name" in a for a in attrs):
                    raise ShopifyAPIError(422, {"errors": {"note_attributes": ["is invalid"]}})
                order["note_attributes"] = [{"name": str(a["name"]), "value": a.get("value")} for a in attrs]
            if "tags" in changes:
                tags = changes["tags"]
                order["tags"] = ", ".join(tags) if isinstance(tags, list) else str(tags or "")
            for key in ("note", "email", "phone", "buyer_accepts_marketing", "shipping_address"):
                if key in changes:
                    order[key] = changes[key]
            order["updated_at"] = shopify_time(datetime.now(UTC))
            return copy.deepcopy(order)

    def cancel_order(self, order_id: int, reason: str = "other") -> dict[str, Any]:
        with self.lock:
            order = self.order(order_id)
            if order.get("cancelled_at"):
                raise ShopifyAPIError(422, {"error": "Order has already been cancelled"})
            if order.get("fulfillment_status") == "fulfilled":
                raise ShopifyAPIError(422, {"error": "Cannot cancel a fulfilled order"})
            now = shopify_time(datetime.now(UTC))
            order.update(cancelled_at=now, cancel_reason=reason, closed_at=now, updated_at=now)
            for fo in self.fulfillment_orders.values():
                if fo["order_id"] == order_id:
                    fo["status"] = "cancelled"
            return copy.deepcopy(order)

    def fulfillment_orders_for(self, order_id: int) -> list[dict[str, Any]]:
        with self.lock:
            self.order(order_id)
            return [copy.deepcopy(fo) for fo in self.fulfillment_orders.values() if fo["order_id"] == order_id]

    # ----- webhook subscriptions ----------------------------------------------------------------
    def add_webhook(self, topic: str, address: str, fmt: str = "json") -> dict[str, Any]:
        with self.lock:
            if any(w["topic"] == topic and w["address"] == address for w in self.webhooks.values()):
                raise ShopifyAPIError(422, {"errors": {"address": ["for this topic has already been taken"]}})
            wid = self.next_id()
            now = shopify_time(datetime.now(UTC))
            hook = {
                "id": wid,
                "address": address,
                "topic": topic,
                "format": fmt,
                "created_at": now,
                "updated_at": now,
                "fields": [],
                "api_version": API_VERSION,
            }
            self.webhooks[wid] = hook
            return dict(hook)

    def subscriptions(self, topic: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(w) for w in self.webhooks.values() if w["topic"] == topic]


class ShopifySimulator:
    """Every simulated shop, its throttles, faults and outbound webhooks."""

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        rest_capacity: int = 40,
        rest_leak_rate: float = 2.0,
        graphql_maximum: float = 2000.0,
        graphql_restore_rate: float = 100.0,
        max_body_bytes: int = 2 * 1024 * 1024,
        webhook_retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        app_secret: str = DEFAULT_APP_SECRET,
    ) -> None:
        self.clock = clock
        self.rest_capacity = rest_capacity
        self.rest_leak_rate = rest_leak_rate
        self.graphql_maximum = graphql_maximum
        self.graphql_restore_rate = graphql_restore_rate
        self.max_body_bytes = max_body_bytes
        self.app_secret = app_secret
        self.faults = FaultState()
        self.sender = WebhookSender(retry_delays=webhook_retry_delays)
        self.tokens: dict[str, str] = {DEFAULT_TOKEN: DEFAULT_SHOP}
        self.shops: dict[str, ShopStore] = {}
        self._lock = threading.Lock()
        self._background: set[asyncio.Task[WebhookDelivery]] = set()

    def register_token(self, access_token: str, shop_domain: str = DEFAULT_SHOP) -> None:
        with self._lock:
            self.tokens[access_token] = shop_domain

    def shop(self, domain: str | None = None) -> ShopStore:
        """The store for `domain` (default shop when None), created on first use."""
        name = domain or DEFAULT_SHOP
        with self._lock:
            if name not in self.shops:
                self.shops[name] = ShopStore(name, self)
            return self.shops[name]

    def shop_for_token(self, token: str | None) -> ShopStore | None:
        domain = self.tokens.get(token or "")
        return self.shop(domain) if domain else None

    def reset(self) -> None:
        """Forget every shop's data and counters; tokens and the app secret stay."""
        with self._lock:
            self.shops.clear()
        self.faults.clear()
        self.faults.injected.clear()
        self.sender.clear()

    def seed_products(self, products: Iterable[Mapping[str, Any]], shop: str | None = None) -> int:
        store = self.shop(shop)
        return sum(1 for p in products if store.add_product(p))

    def seed_orders(
        self, orders: Iterable[Mapping[str, Any]], shop: str | None = None, *, notify: bool = False
    ) -> list[dict[str, Any]]:
        """Store orders; with `notify`, send orders/create to the shop's subscriptions in the background."""
        store = self.shop(shop)
        created = [store.add_order(o) for o in orders]
        if notify:
            for order in created:
                self.notify(store, "orders/create", order)
        return created

    def notify(self, store: ShopStore, topic: str, payload: Mapping[str, Any]) -> None:
        """Send `topic` to every subscription of `store` (needs a running loop; no-op otherwise)."""
        subs = store.subscriptions(topic)
        if not subs:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        event_id = f"{store.next_id()}"
        body = copy.deepcopy(dict(payload))
        for sub in subs:
            task = loop.create_task(self._deliver_to_subscription(store, sub, topic, body, event_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _deliver_to_subscription(
        self, store: ShopStore, sub: Mapping[str, Any], topic: str, payload: Mapping[str, Any], event_id: str
    ) -> WebhookDelivery:
        delivery = await self.deliver_webhook(
            sub["address"], topic, payload, secret=self.app_secret, event_id=event_id, shop_domain=store.domain
        )
        if not delivery.delivered:  # Admin-API subscriptions are removed after the retries run out
            with store.lock:
                store.webhooks.pop(sub["id"], None)
        return delivery

    async def deliver_webhook(
        self,
        target_url: str,
        topic: str,
        payload: Mapping[str, Any] | bytes,
        *,
        secret: str,
        event_id: str | None = None,
        webhook_id: str | None = None,
        shop_domain: str = DEFAULT_SHOP,
        api_version: str = API_VERSION,
        retry_delays: Sequence[float] | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> WebhookDelivery:
        """POST a signed webhook to `target_url`, retrying on failure; returns every attempt."""
        return await self.sender.deliver(
            target_url,
            topic,
            payload,
            secret=secret,
            shop_domain=shop_domain,
            api_version=api_version,
            event_id=event_id,
            webhook_id=webhook_id,
            retry_delays=retry_delays,
            extra_headers=extra_headers,
        )

    async def drain_webhooks(self, timeout: float = 10.0) -> None:
        """Wait for background deliveries started by `notify` (only from the server's loop)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)

    def counters(self) -> dict[str, Any]:
        with self._lock:
            stores = list(self.shops.values())
        return {
            "shops": {
                s.domain: {
                    "orders": len(s.orders),
                    "products": len(s.products),
                    "webhook_subscriptions": len(s.webhooks),
                    "rest": {
                        **s.rest_rate.snapshot(),
                        "bucket_capacity": s.rest_bucket.capacity,
                        "leak_rate": s.rest_bucket.leak_rate,
                        "max_bucket_level": s.rest_bucket.max_level,
                    },
                    "graphql": {"requests": s.graphql_requests, "throttled": s.graphql_throttled},
                }
                for s in stores
            },
            "faults_injected": dict(self.faults.injected),
            "webhook_deliveries": len(self.sender.deliveries),
            "webhook_attempts": sum(len(d.attempts) for d in self.sender.deliveries),
        }
