"""State of the ShipStation (V1) simulator: orders upserted on orderKey, shipments, webhooks, limits.

Rules mirrored from the V1 docs: `createorder` is an upsert on `orderKey` and a full replace;
only orders in awaiting_payment, awaiting_shipment or on_hold can be updated; `createorders`
takes at most 100 orders; the API allows 40 requests per minute per key pair in fixed windows
reported through `X-Rate-Limit-*` headers. Webhook deliveries carry only a resource URL.
"""

from __future__ import annotations

import copy
import itertools
import math
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from crossdock.connectors.sandbox.faults import FaultState
from crossdock.connectors.sandbox.shopify_limits import Clock

DEFAULT_API_KEY = "ss_sandbox_key"
DEFAULT_API_SECRET = "ss_sandbox_secret"
ORDER_STATUSES = {"awaiting_payment", "awaiting_shipment", "pending_fulfillment", "shipped", "on_hold", "cancelled"}
UPDATABLE = {"awaiting_payment", "awaiting_shipment", "on_hold"}
WEBHOOK_EVENTS = {
    "ORDER_NOTIFY",
    "ITEM_ORDER_NOTIFY",
    "SHIP_NOTIFY",
    "ITEM_SHIP_NOTIFY",
    "FULFILLMENT_SHIPPED",
    "FULFILLMENT_REJECTED",
}


class ShipStationAPIError(Exception):
    """An error response as ShipStation renders it (ASP.NET Web API style bodies)."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def invalid(model_state: dict[str, list[str]]) -> ShipStationAPIError:
    return ShipStationAPIError(400, {"Message": "The request is invalid.", "ModelState": model_state})


@dataclass
class RateWindow:
    """One key pair's fixed rate-limit window."""

    started: float
    count: int = 0


@dataclass
class ShipNotifyAttempt:
    target_url: str
    body: bytes
    status: int | None
    error: str | None


@dataclass
class RateDecision:
    allowed: bool
    headers: dict[str, str] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")[:-3] + "0000"


def address_verified(address: Mapping[str, Any]) -> str:
    """ShipStation's `addressVerified` verdict, simplified: US addresses with street+zip validate."""
    if not address.get("street1") or not address.get("postalCode"):
        return "Address validation failed"
    if (address.get("country") or "US") != "US":
        return "Address not yet validated"
    return "Address validated successfully"


class ShipStationSimulator:
    """Everything the ShipStation simulator knows; guard access with `lock`."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        rate_limit: int = 40,
        window_s: float = 60.0,
        clock: Clock = time.monotonic,
        max_body_bytes: int = 2 * 1024 * 1024,
        webhook_timeout_s: float = 5.0,
    ) -> None:
        self.credentials = {(api_key, api_secret)}
        self.rate_limit = rate_limit
        self.window_s = window_s
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.webhook_timeout_s = webhook_timeout_s
        self.faults = FaultState()
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.orders: dict[int, dict[str, Any]] = {}
            self.order_by_key: dict[str, int] = {}
            self.shipments: dict[int, dict[str, Any]] = {}
            self.webhooks: dict[int, dict[str, Any]] = {}
            self.windows: dict[str, RateWindow] = {}
            self.notify_attempts: list[ShipNotifyAttempt] = []
            self.accepted = 0
            self.throttled = 0
            self.max_in_window = 0
            self._ids = itertools.count(100_000_001)
        self.faults.clear()
        self.faults.injected.clear()

    # ----- rate limit --------------------------------------------------------------------------
    def admit(self, api_key: str) -> RateDecision:
        with self.lock:
            now = self.clock()
            window = self.windows.get(api_key)
            if window is None or now >= window.started + self.window_s:
                window = self.windows[api_key] = RateWindow(started=now)
            reset = max(0, math.ceil(window.started + self.window_s - now))
            allowed = window.count < self.rate_limit
            if allowed:
                window.count += 1
                self.accepted += 1
                self.max_in_window = max(self.max_in_window, window.count)
            else:
                self.throttled += 1
            headers = {
                "X-Rate-Limit-Limit": str(self.rate_limit),
                "X-Rate-Limit-Remaining": str(self.rate_limit - window.count),
                "X-Rate-Limit-Reset": str(reset),
            }
            return RateDecision(allowed, headers)

    # ----- orders ------------------------------------------------------------------------------
    def upsert_order(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """`createorder`: insert, or fully replace the order with the same orderKey."""
        problems: dict[str, list[str]] = {}
        for name in ("orderNumber", "orderDate", "orderStatus", "billTo", "shipTo"):
            if payload.get(name) in (None, ""):
                problems[f"apiOrder.{name}"] = [f"The {name} field is required."]
        if len(str(payload.get("orderNumber") or "")) > 50:
            problems["apiOrder.orderNumber"] = ["The field orderNumber must be a string with a maximum length of 50."]
        status = payload.get("orderStatus")
        if status and status not in ORDER_STATUSES:
            problems["apiOrder.orderStatus"] = [f"The value '{status}' is not a valid order status."]
        if problems:
            raise invalid(problems)
        with self.lock:
            key = str(payload.get("orderKey") or uuid.uuid4().hex)
            existing_id = self.order_by_key.get(key)
            if existing_id is not None:
                current = self.orders[existing_id]
                if current["orderStatus"] not in UPDATABLE:
                    raise ShipStationAPIError(
                        400,
                        {
                            "Message": "An error has occurred.",
                            "ExceptionMessage": (
                                f"The order with orderKey '{key}' cannot be updated because its status is "
                                f"'{current['orderStatus']}'. Only awaiting_payment, awaiting_shipment and on_hold "
                                "orders can be updated."
                            ),
                            "ExceptionType": "System.InvalidOperationException",
                        },
                    )
            order_id = existing_id or next(self._ids)
            created = self.orders[existing_id]["createDate"] if existing_id else _now()
            order = self._render(order_id, key, payload, created)
            self.orders[order_id] = order
            self.order_by_key[key] = order_id
            return copy.deepcopy(order)

    def _render(self, order_id: int, key: str, p: Mapping[str, Any], created: str) -> dict[str, Any]:
        items = []
        for i, item in enumerate(p.get("items") or []):
            items.append(
                {
                    "orderItemId": order_id * 100 + i,
                    "lineItemKey": item.get("lineItemKey"),
                    "sku": item.get("sku"),
                    "name": item.get("name"),
                    "imageUrl": item.get("imageUrl"),
                    "weight": item.get("weight"),
                    "quantity": int(item.get("quantity") or 0),
                    "unitPrice": float(item.get("unitPrice") or 0),
                    "taxAmount": item.get("taxAmount"),
                    "shippingAmount": item.get("shippingAmount"),
                    "warehouseLocation": item.get("warehouseLocation"),
                    "options": item.get("options") or [],
                    "productId": item.get("productId"),
                    "fulfillmentSku": item.get("fulfillmentSku"),
                    "adjustment": bool(item.get("adjustment", False)),
                    "upc": item.get("upc"),
                    "createDate": created,
                    "modifyDate": _now(),
                }
            )
        ship_to = {**_address(p.get("shipTo")), "addressVerified": address_verified(p.get("shipTo") or {})}
        goods = sum(i["quantity"] * i["unitPrice"] for i in items)
        tax, shipping = float(p.get("taxAmount") or 0), float(p.get("shippingAmount") or 0)
        return {
            "orderId": order_id,
            "orderNumber": str(p["orderNumber"]),
            "orderKey": key,
            "orderDate": p["orderDate"],
            "createDate": created,
            "modifyDate": _now(),
            "paymentDate": p.get("paymentDate"),
            "shipByDate": p.get("shipByDate"),
            "orderStatus": p["orderStatus"],
            "customerId": None,
            "customerUsername": p.get("customerUsername"),
            "customerEmail": p.get("customerEmail"),
            "billTo": {**_address(p.get("billTo")), "addressVerified": None},
            "shipTo": ship_to,
            "items": items,
            "orderTotal": round(goods + tax + shipping, 2),
            "amountPaid": float(p.get("amountPaid") or 0),
            "taxAmount": tax,
            "shippingAmount": shipping,
            "customerNotes": p.get("customerNotes"),
            "internalNotes": p.get("internalNotes"),
            "gift": bool(p.get("gift", False)),
            "paymentMethod": p.get("paymentMethod"),
            "requestedShippingService": p.get("requestedShippingService"),
            "carrierCode": p.get("carrierCode"),
            "serviceCode": p.get("serviceCode"),
            "packageCode": p.get("packageCode"),
            "confirmation": p.get("confirmation", "none"),
            "shipDate": None,
            "holdUntilDate": p.get("holdUntilDate"),
            "weight": p.get("weight"),
            "advancedOptions": {"storeId": 1, **(p.get("advancedOptions") or {})},
            "tagIds": p.get("tagIds"),
            "externallyFulfilled": False,
        }

    def order(self, order_id: int) -> dict[str, Any]:
        with self.lock:
            found = self.orders.get(order_id)
            if found is None:
                raise ShipStationAPIError(404, {"Message": f"Order {order_id} was not found."})
            return copy.deepcopy(found)

    # ----- shipping and SHIP_NOTIFY ------------------------------------------------------------
    def ship(self, order_id: int, *, carrier_code: str = "ups", tracking_number: str | None = None) -> dict[str, Any]:
        """Mark an order shipped and create its shipment in a new batch (what a label print does)."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise ShipStationAPIError(404, {"Message": f"Order {order_id} was not found."})
            if order["orderStatus"] in ("shipped", "cancelled"):
                raise ShipStationAPIError(400, {"Message": f"Order {order_id} is already {order['orderStatus']}."})
            shipment_id = next(self._ids)
            batch_id = next(self._ids)
            order["orderStatus"] = "shipped"
            order["shipDate"] = datetime.now(UTC).date().isoformat()
            order["modifyDate"] = _now()
            shipment = {
                "shipmentId": shipment_id,
                "orderId": order_id,
                "orderKey": order["orderKey"],
                "userId": None,
                "orderNumber": order["orderNumber"],
                "createDate": _now(),
                "shipDate": order["shipDate"],
                "shipmentCost": 7.5,
                "insuranceCost": 0,
                "trackingNumber": tracking_number or f"1Z{shipment_id:016d}",
                "isReturnLabel": False,
                "batchNumber": str(batch_id),
                "carrierCode": carrier_code,
                "serviceCode": "ups_ground" if carrier_code == "ups" else f"{carrier_code}_ground",
                "packageCode": "package",
                "confirmation": "none",
                "warehouseId": 1,
                "voided": False,
                "voidDate": None,
                "marketplaceNotified": False,
                "notifyErrorMessage": None,
                "shipTo": copy.deepcopy(order["shipTo"]),
                "weight": order.get("weight"),
                "dimensions": None,
                "insuranceOptions": None,
                "advancedOptions": {"storeId": 1},
                "shipmentItems": [
                    {k: i[k] for k in ("orderItemId", "lineItemKey", "sku", "name", "quantity", "unitPrice")}
                    for i in order["items"]
                ],
                "labelData": None,
                "formData": None,
            }
            self.shipments[shipment_id] = shipment
            return copy.deepcopy(shipment)

    async def send_ship_notify(self, resource_url: str) -> list[ShipNotifyAttempt]:
        """POST `{resource_url, resource_type: SHIP_NOTIFY}` (unsigned) to every SHIP_NOTIFY subscriber."""
        with self.lock:
            targets = [w["target_url"] for w in self.webhooks.values() if w["event"] == "SHIP_NOTIFY"]
        body = httpx.Request(
            "POST", "http://x", json={"resource_url": resource_url, "resource_type": "SHIP_NOTIFY"}
        ).content
        attempts = []
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.webhook_timeout_s, connect=1.0)) as http:
            for target in targets:
                try:
                    response = await http.post(target, content=body, headers={"Content-Type": "application/json"})
                    attempt = ShipNotifyAttempt(target, body, response.status_code, None)
                except httpx.HTTPError as exc:
                    attempt = ShipNotifyAttempt(target, body, None, type(exc).__name__)
                attempts.append(attempt)
        with self.lock:
            self.notify_attempts.extend(attempts)
        return attempts

    def subscribe(self, target_url: str, event: str, store_id: int | None, friendly_name: str | None) -> int:
        with self.lock:
            hook_id = next(self._ids)
            self.webhooks[hook_id] = {
                "WebHookID": hook_id,
                "target_url": target_url,
                "event": event,
                "store_id": store_id,
                "friendly_name": friendly_name,
                "IsLabelAPIHook": False,
                "Active": True,
            }
            return hook_id

    def counters(self) -> dict[str, Any]:
        with self.lock:
            return {
                "orders": len(self.orders),
                "shipments": len(self.shipments),
                "webhooks": len(self.webhooks),
                "accepted": self.accepted,
                "throttled": self.throttled,
                "rate_limit": self.rate_limit,
                "window_s": self.window_s,
                "max_in_window": self.max_in_window,
                "notify_attempts": len(self.notify_attempts),
                "faults_injected": dict(self.faults.injected),
            }


def _address(raw: Any) -> dict[str, Any]:
    src = raw if isinstance(raw, Mapping) else {}
    keys = ("name", "company", "street1", "street2", "street3", "city", "state", "postalCode", "country", "phone")
    return {**{k: src.get(k) for k in keys}, "residential": src.get("residential")}
