"""Async Shopify Admin API client: REST with cursor paging and self-pacing, plus GraphQL.

The client keeps a local model of the shop's REST leaky bucket, corrected by every
`X-Shopify-Shop-Api-Call-Limit` header, and waits before a call would overflow it, so a
well-behaved worker rarely sees a 429. `acquire` is the hook for the engine's per-account,
cross-worker rate limiter; it is awaited before every HTTP request. Every failure is raised as a
classified `ConnectorError` (see `classify`).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.shopify.classify import SYSTEM, Context, classify_graphql_errors, classify_response
from crossdock.connectors.transport import (
    Acquire,
    RetryPolicy,
    Sleep,
    float_header,
    parse_json,
    send_with_retry,
)

DEFAULT_API_VERSION = "2025-07"
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')


class RestPacer:
    """Client-side mirror of the shop's REST leaky bucket; waits before a call would overflow it."""

    def __init__(
        self, capacity: int = 40, leak_rate: float = 2.0, headroom: int = 1, *, clock: Any = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.leak_rate = leak_rate
        self.headroom = headroom
        self.clock = clock
        self._level = 0.0
        self._at = clock()
        self._lock = asyncio.Lock()

    def _current(self) -> float:
        now = self.clock()
        self._level = max(0.0, self._level - (now - self._at) * self.leak_rate)
        self._at = now
        return self._level

    async def reserve(self, sleep: Sleep) -> None:
        async with self._lock:  # one waiter at a time keeps the queue fair and the estimate exact
            excess = self._current() + 1 - (self.capacity - self.headroom)
            if excess > 0:
                await sleep(excess / self.leak_rate)
                self._current()
            self._level += 1

    def observe(self, header: str | None) -> None:
        """Fold in the server's `used/capacity` reading (other apps may share the bucket)."""
        if not header or "/" not in header:
            return
        used, _, cap = header.partition("/")
        try:
            used_n, cap_n = int(used), int(cap)
        except ValueError:
            return
        self.capacity = cap_n
        self._level = max(self._current(), float(used_n))


class ShopifyClient:
    """One shop's Admin API. Use as `async with ShopifyClient(...) as shop:` or call `aclose()`."""

    def __init__(
        self,
        shop_url: str,
        access_token: str,
        *,
        api_version: str = DEFAULT_API_VERSION,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        acquire: Acquire | None = None,
        rest_capacity: int = 40,
        rest_leak_rate: float = 2.0,
        rest_headroom: int = 1,
        sleep: Sleep = asyncio.sleep,
        clock: Any = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = f"{shop_url.rstrip('/')}/admin/api/{api_version}"
        self.api_version = api_version
        self._token = access_token
        self._http = http or httpx.AsyncClient(timeout=timeout_s)
        self._owns_http = http is None
        self.retry = retry or RetryPolicy()
        self.acquire = acquire
        self.sleep = sleep
        self.clock = clock
        self.rng = rng or random.Random()
        # Headroom absorbs network/server delay: our marble lands later than we counted it, so the
        # server's bucket runs `delay x leak_rate` fuller than our model. 1 marble = 0.5 s at 2/s.
        self.pacer = RestPacer(rest_capacity, rest_leak_rate, rest_headroom, clock=clock)
        # Last cost reading: (points available, restore per second, when, last requested cost).
        self._graphql_available: tuple[float, float, float, float] | None = None

    async def __aenter__(self) -> ShopifyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # ----- transport ---------------------------------------------------------------------------
    async def _before_rest(self) -> None:
        if self.acquire is not None:
            await self.acquire()
        await self.pacer.reserve(self.sleep)

    async def _before_graphql(self) -> None:
        if self.acquire is not None:
            await self.acquire()
        await self._pace_graphql()

    def _retry_after(self, response: httpx.Response) -> float | None:
        self.pacer.observe(response.headers.get("x-shopify-shop-api-call-limit"))
        if response.status_code == 429:
            self.pacer.observe(f"{self.pacer.capacity}/{self.pacer.capacity}")
        return float_header(response, "retry-after")

    async def _rest(
        self,
        method: str,
        path_or_url: str,
        *,
        context: Context = Context.GENERIC,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        graphql: bool = False,
    ) -> tuple[Any, httpx.Response]:
        url = path_or_url if path_or_url.startswith("http") else f"{self.base_url}/{path_or_url.lstrip('/')}"
        headers = {"X-Shopify-Access-Token": self._token, "Accept": "application/json"}

        async def send() -> httpx.Response:
            response = await self._http.request(method, url, params=params, json=json, headers=headers)
            self.pacer.observe(response.headers.get("x-shopify-shop-api-call-limit"))
            return response

        response = await send_with_retry(
            send,
            system=SYSTEM,
            policy=self.retry,
            idempotent=method in ("GET", "PUT", "DELETE") if idempotent is None else idempotent,
            retry_after_of=self._retry_after,
            before=self._before_graphql if graphql else self._before_rest,
            sleep=self.sleep,
            rng=self.rng,
        )
        if response.is_success:
            return parse_json(response, SYSTEM), response
        raise classify_response(response, context)

    async def _paged(
        self, path: str, key: str, params: Mapping[str, Any], context: Context
    ) -> AsyncIterator[dict[str, Any]]:
        body, response = await self._rest(
            "GET", path, params={k: v for k, v in params.items() if v is not None}, context=context
        )
        while True:
            items = body.get(key) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise _shape(key, response)
            for item in items:
                yield item
            match = _NEXT_LINK.search(response.headers.get("link", ""))
            if not match:
                return
            body, response = await self._rest("GET", match.group(1), context=context)

    # ----- orders ------------------------------------------------------------------------------
    def list_orders(
        self,
        *,
        status: str = "any",
        updated_at_min: str | None = None,
        created_at_min: str | None = None,
        since_id: int | None = None,
        financial_status: str | None = None,
        limit: int = 250,
        fields: Sequence[str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching order, following `Link: rel="next"` across pages."""
        params = {
            "status": status,
            "updated_at_min": updated_at_min,
            "created_at_min": created_at_min,
            "since_id": since_id,
            "financial_status": financial_status,
            "limit": limit,
            "fields": ",".join(fields) if fields else None,
        }
        return self._paged("orders.json", "orders", params, Context.ORDER)

    async def get_order(self, order_id: int) -> dict[str, Any]:
        return await self._one("GET", f"orders/{order_id}.json", "order", Context.ORDER)

    async def update_order(self, order_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """PUT a partial order (e.g. `note_attributes`/`tags` for the ERP number write-back)."""
        body = {"order": {"id": order_id, **changes}}
        return await self._one("PUT", f"orders/{order_id}.json", "order", Context.ORDER, json=body)

    async def cancel_order(self, order_id: int, *, reason: str = "other") -> dict[str, Any]:
        return await self._one(
            "POST", f"orders/{order_id}/cancel.json", "order", Context.ORDER, json={"reason": reason}, idempotent=True
        )

    # ----- catalog and inventory ---------------------------------------------------------------
    def list_products(self, *, since_id: int | None = None, limit: int = 250) -> AsyncIterator[dict[str, Any]]:
        return self._paged("products.json", "products", {"since_id": since_id, "limit": limit}, Context.CATALOG)

    async def get_variant(self, variant_id: int) -> dict[str, Any]:
        return await self._one("GET", f"variants/{variant_id}.json", "variant", Context.CATALOG)

    async def update_variant(self, variant_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        body = {"variant": {"id": variant_id, **changes}}
        return await self._one("PUT", f"variants/{variant_id}.json", "variant", Context.CATALOG, json=body)

    async def set_inventory_level(self, inventory_item_id: int, location_id: int, available: int) -> dict[str, Any]:
        body = {"inventory_item_id": inventory_item_id, "location_id": location_id, "available": available}
        return await self._one(
            "POST", "inventory_levels/set.json", "inventory_level", Context.INVENTORY, json=body, idempotent=True
        )

    async def adjust_inventory_level(self, inventory_item_id: int, location_id: int, delta: int) -> dict[str, Any]:
        """Relative change; NOT idempotent, so it is only retried when the call was surely not applied."""
        body = {"inventory_item_id": inventory_item_id, "location_id": location_id, "available_adjustment": delta}
        return await self._one("POST", "inventory_levels/adjust.json", "inventory_level", Context.INVENTORY, json=body)

    async def get_inventory_levels(
        self, *, inventory_item_ids: Sequence[int] = (), location_ids: Sequence[int] = ()
    ) -> list[dict[str, Any]]:
        params = {
            "inventory_item_ids": ",".join(map(str, inventory_item_ids)) or None,
            "location_ids": ",".join(map(str, location_ids)) or None,
        }
        return [
            lvl async for lvl in self._paged("inventory_levels.json", "inventory_levels", params, Context.INVENTORY)
        ]

    # ----- fulfillment and refunds ------------------------------------------------------------
    async def get_fulfillment_orders(self, order_id: int) -> list[dict[str, Any]]:
        body, response = await self._rest(
            "GET", f"orders/{order_id}/fulfillment_orders.json", context=Context.FULFILLMENT
        )
        if not isinstance(body, dict) or not isinstance(body.get("fulfillment_orders"), list):
            raise _shape("fulfillment_orders", response)
        return list(body["fulfillment_orders"])

    async def create_fulfillment(
        self,
        line_items_by_fulfillment_order: Sequence[Mapping[str, Any]],
        *,
        tracking_number: str | None = None,
        tracking_company: str | None = None,
        tracking_url: str | None = None,
        notify_customer: bool = False,
    ) -> dict[str, Any]:
        """Fulfil from fulfillment orders; a closed or over-asked one raises FULFILLMENT_STATE."""
        fulfillment: dict[str, Any] = {
            "line_items_by_fulfillment_order": list(line_items_by_fulfillment_order),
            "notify_customer": notify_customer,
        }
        tracking = {"number": tracking_number, "company": tracking_company, "url": tracking_url}
        if any(tracking.values()):
            fulfillment["tracking_info"] = {k: v for k, v in tracking.items() if v is not None}
        return await self._one(
            "POST", "fulfillments.json", "fulfillment", Context.FULFILLMENT, json={"fulfillment": fulfillment}
        )

    async def create_refund(self, order_id: int, refund: Mapping[str, Any]) -> dict[str, Any]:
        return await self._one(
            "POST", f"orders/{order_id}/refunds.json", "refund", Context.REFUND, json={"refund": dict(refund)}
        )

    async def list_payouts(self) -> list[dict[str, Any]]:
        return [p async for p in self._paged("shopify_payments/payouts.json", "payouts", {}, Context.GENERIC)]

    async def register_webhook(self, topic: str, address: str) -> dict[str, Any]:
        body = {"webhook": {"topic": topic, "address": address, "format": "json"}}
        return await self._one("POST", "webhooks.json", "webhook", Context.GENERIC, json=body)

    async def _one(
        self, method: str, path: str, key: str, context: Context, *, json: Any = None, idempotent: bool | None = None
    ) -> dict[str, Any]:
        body, response = await self._rest(method, path, context=context, json=json, idempotent=idempotent)
        if not isinstance(body, dict) or not isinstance(body.get(key), dict):
            raise _shape(key, response)
        return dict(body[key])

    # ----- GraphQL -----------------------------------------------------------------------------
    async def graphql(
        self, query: str, variables: Mapping[str, Any] | None = None, *, raise_user_errors: bool = True
    ) -> dict[str, Any]:
        """Run a GraphQL operation and return `data`; waits out THROTTLED using the cost extension."""
        is_mutation = query.lstrip().startswith("mutation")
        payload = {"query": query, "variables": dict(variables or {})}
        for attempt in range(1, self.retry.max_attempts + 1):
            body, response = await self._rest(
                "POST", "graphql.json", json=payload, idempotent=not is_mutation, context=Context.GRAPHQL, graphql=True
            )
            if not isinstance(body, dict):
                raise _shape("data", response)
            cost = (body.get("extensions") or {}).get("cost") or {}
            wait = self._observe_cost(cost)
            errors = body.get("errors")
            if errors and _throttled(errors):
                if attempt == self.retry.max_attempts:
                    break
                await self.sleep(wait if wait > 0 else self.retry.backoff(attempt, self.rng))
                continue
            if errors:
                raise classify_graphql_errors(errors, response.status_code)
            data = body.get("data")
            if not isinstance(data, dict):
                raise _shape("data", response)
            if raise_user_errors:
                for field, result in data.items():
                    if isinstance(result, dict) and result.get("userErrors"):
                        raise classify_graphql_errors(result["userErrors"], response.status_code, field=field)
            return data
        raise ConnectorError(
            f"Shopify GraphQL stayed THROTTLED for {self.retry.max_attempts} attempts; retry later.",
            kind=FailureKind.TRANSIENT,
            category=FailureCategory.RATE_LIMIT,
            system=SYSTEM,
            status=200,
            vendor_code="THROTTLED",
        )

    def _observe_cost(self, cost: Mapping[str, Any]) -> float:
        """Remember the bucket reading; return how long until the last requested cost fits again."""
        status = cost.get("throttleStatus") or {}
        try:
            available = float(status["currentlyAvailable"])
            restore = float(status["restoreRate"]) or 1.0
            requested = float(cost.get("requestedQueryCost") or 0)
        except (KeyError, TypeError, ValueError):
            return 0.0
        self._graphql_available = (available, restore, self.clock(), requested)
        return max(0.0, (requested - available) / restore) if cost.get("actualQueryCost") is None else 0.0

    async def _pace_graphql(self) -> None:
        """Before a query, wait until the bucket holds what the previous query asked for."""
        if self._graphql_available is None:
            return
        available, restore, at, expected_cost = self._graphql_available
        now_available = available + (self.clock() - at) * restore
        if now_available < expected_cost:
            await self.sleep((expected_cost - now_available) / restore)


def _throttled(errors: Any) -> bool:
    return isinstance(errors, list) and any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors
    )


def _shape(key: str, response: httpx.Response) -> ConnectorError:
    return ConnectorError(
        f"Shopify answered {response.request.url.path} without the expected '{key}' object; the API "
        "version or a proxy may be returning something else.",
        kind=FailureKind.TRANSIENT,
        category=FailureCategory.CONNECTION,
        system=SYSTEM,
        status=response.status_code,
        vendor_code="unexpected_shape",
    )
