"""Async ShipStation V1 client: orderKey upserts, paged order lists, shipments behind SHIP_NOTIFY.

ShipStation allows 40 requests per minute per key pair in fixed windows and reports the window
in `X-Rate-Limit-Remaining` / `X-Rate-Limit-Reset` (seconds). The client tracks those headers,
waits for the reset when the window is spent instead of provoking a 429, and on a 429 waits the
reported reset before retrying. `acquire` is the engine's cross-worker limiter hook.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.transport import (
    Acquire,
    RetryPolicy,
    Sleep,
    describe,
    float_header,
    parse_json,
    send_with_retry,
)

SYSTEM = "shipstation"
DEFAULT_BASE_URL = "https://ssapi.shipstation.com"
MAX_BATCH = 100


class RateWindowPacer:
    """Client-side view of the current fixed window: calls left and when it resets."""

    def __init__(self, *, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.remaining: int | None = None
        self.reset_at = 0.0
        self.in_flight = 0
        self._lock = asyncio.Lock()

    async def reserve(self, sleep: Sleep) -> None:
        async with self._lock:
            if self.remaining is not None and self.remaining - self.in_flight <= 0:
                wait = self.reset_at - self.clock()
                if wait > 0:
                    await sleep(wait)
                self.remaining = None  # a fresh window; the next response tells us what is left
            self.in_flight += 1

    def observe(self, response: httpx.Response) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        remaining, reset = response.headers.get("x-rate-limit-remaining"), float_header(response, "x-rate-limit-reset")
        if remaining is not None and remaining.isdigit() and reset is not None:
            # Some in-flight calls may already be in this count; subtracting all of them in
            # `reserve` errs on the safe side.
            self.remaining = int(remaining)
            self.reset_at = self.clock() + reset


class ShipStationClient:
    """One ShipStation account. Use as `async with ShipStationClient(key, secret) as ss:`."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        acquire: Acquire | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Any = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
        self._http = http or httpx.AsyncClient(timeout=timeout_s)
        self._owns_http = http is None
        self.retry = retry or RetryPolicy(max_retry_after_s=90.0)
        self.acquire = acquire
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.pacer = RateWindowPacer(clock=clock)

    async def __aenter__(self) -> ShipStationClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _before(self) -> None:
        if self.acquire is not None:
            await self.acquire()
        await self.pacer.reserve(self.sleep)

    async def _call(
        self,
        method: str,
        path_or_url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool = True,
    ) -> Any:
        url = path_or_url if path_or_url.startswith("http") else f"{self.base_url}/{path_or_url.lstrip('/')}"

        async def send() -> httpx.Response:
            try:
                response = await self._http.request(method, url, json=json, params=params, headers=self._headers)
            except httpx.HTTPError:
                self.pacer.in_flight = max(0, self.pacer.in_flight - 1)
                raise
            self.pacer.observe(response)
            return response

        response = await send_with_retry(
            send,
            system=SYSTEM,
            policy=self.retry,
            idempotent=idempotent,
            retry_after_of=lambda r: float_header(r, "x-rate-limit-reset") if r.status_code == 429 else None,
            before=self._before,
            sleep=self.sleep,
            rng=self.rng,
        )
        if response.is_success:
            return parse_json(response, SYSTEM)
        raise classify_response(response)

    # ----- orders ------------------------------------------------------------------------------
    async def create_or_update_order(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """Upsert on `orderKey` (required: it is the idempotency key, so retries never duplicate)."""
        if not order.get("orderKey"):
            raise ConnectorError(
                "A ShipStation order needs an orderKey; without one every retry creates a duplicate.",
                kind=FailureKind.DATA,
                category=FailureCategory.VALIDATION,
                system=SYSTEM,
            )
        return _object(await self._call("POST", "orders/createorder", json=dict(order)), "order")

    async def create_orders(self, orders: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Upsert many orders, 100 per request; returns ShipStation's per-order results in order."""
        results: list[dict[str, Any]] = []
        for start in range(0, len(orders), MAX_BATCH):
            chunk = [dict(o) for o in orders[start : start + MAX_BATCH]]
            body = _object(await self._call("POST", "orders/createorders", json=chunk), "results")
            results.extend(body.get("results") or [])
        return results

    async def get_order(self, order_id: int) -> dict[str, Any]:
        return _object(await self._call("GET", f"orders/{order_id}"), "order")

    async def list_orders(
        self, *, order_status: str | None = None, order_number: str | None = None, page_size: int = 500
    ) -> AsyncIterator[dict[str, Any]]:
        params = {"orderStatus": order_status, "orderNumber": order_number}
        async for order in self._pages("orders", "orders", {k: v for k, v in params.items() if v}, page_size):
            yield order

    async def get_shipments(self, resource_url: str) -> list[dict[str, Any]]:
        """Fetch the shipments a SHIP_NOTIFY `resource_url` points at (every page)."""
        return [s async for s in self._pages(resource_url, "shipments", {}, None)]

    async def subscribe_webhook(
        self, target_url: str, event: str, *, store_id: int | None = None, friendly_name: str | None = None
    ) -> int:
        body = {"target_url": target_url, "event": event, "store_id": store_id, "friendly_name": friendly_name}
        result = _object(await self._call("POST", "webhooks/subscribe", json=body, idempotent=False), "WebHookID")
        return int(result["WebHookID"])

    async def _pages(
        self, path: str, key: str, params: dict[str, Any], page_size: int | None
    ) -> AsyncIterator[dict[str, Any]]:
        page = 1
        while True:
            query = {**params, "page": page, **({"pageSize": page_size} if page_size else {})}
            body = _object(await self._call("GET", path, params=query), key)
            items = body.get(key)
            if not isinstance(items, list):
                raise _shape(key)
            for item in items:
                yield item
            if page >= int(body.get("pages") or 1) or not items:
                return
            page += 1


def _object(body: Any, key: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _shape(key)
    return body


def _shape(key: str) -> ConnectorError:
    return ConnectorError(
        f"ShipStation answered without the expected '{key}'; a proxy or outage page may be in the way.",
        kind=FailureKind.TRANSIENT,
        category=FailureCategory.CONNECTION,
        system=SYSTEM,
        vendor_code="unexpected_shape",
    )


def classify_response(response: httpx.Response) -> ConnectorError:
    """A `ConnectorError` for a non-2xx ShipStation response."""
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:300]
    detail = describe(body)
    if isinstance(body, dict) and body.get("ModelState"):
        detail = f"{detail} {describe(body['ModelState'])}"
    kind, category, code = FailureKind.DATA, FailureCategory.UNKNOWN, None
    if status in (401, 403):
        kind, category = FailureKind.AUTH, FailureCategory.AUTH
    elif status == 404:
        category = FailureCategory.NOT_FOUND
    elif status == 400 and "cannot be updated" in detail:
        category, code = FailureCategory.FULFILLMENT_STATE, "order_not_updatable"
    elif status in (400, 413, 422):
        category = FailureCategory.VALIDATION
    elif status == 429 or status >= 500:
        kind = FailureKind.TRANSIENT
        category = FailureCategory.RATE_LIMIT if status == 429 else FailureCategory.CONNECTION
    return ConnectorError(
        f"ShipStation rejected {response.request.method} {response.request.url.path} with HTTP {status}: {detail}",
        kind=kind,
        category=category,
        system=SYSTEM,
        status=status,
        vendor_code=code,
        retry_after=float_header(response, "x-rate-limit-reset") if status == 429 else None,
        details={"errors": body if status < 500 else None},
    )
