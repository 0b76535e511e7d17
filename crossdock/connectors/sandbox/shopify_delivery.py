"""Outbound Shopify webhook deliveries: signed POSTs with Shopify's headers, retries and a log.

Retries resend the ORIGINAL body with the SAME `X-Shopify-Event-Id` and `X-Shopify-Webhook-Id`
(Shopify: 8 retries over about 4 hours with exponential backoff; a delivery fails on any non-2xx,
including 3xx, or after 1 s connect / 5 s total). The schedule is injectable so tests use
milliseconds. Every attempt is recorded so tests can assert on exactly what was sent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

# 8 retries, doubling from one minute: the last one lands about 4 h 15 min after the first try.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (60, 120, 240, 480, 960, 1920, 3840, 7680)
WEBHOOK_TOPICS = frozenset(
    {
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
        "refunds/create",
        "fulfillments/create",
        "fulfillments/update",
        "inventory_levels/update",
        "inventory_levels/connect",
        "inventory_levels/disconnect",
        "products/create",
        "products/update",
        "products/delete",
        "app/uninstalled",
    }
)


def sign_body(body: bytes, secret: str) -> str:
    """`X-Shopify-Hmac-Sha256`: base64 of HMAC-SHA256 over the raw body with the app secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class DeliveryAttempt:
    """One POST of a webhook, as the receiver saw it."""

    attempt: int
    event_id: str
    webhook_id: str
    topic: str
    target_url: str
    body: bytes
    headers: dict[str, str]
    status: int | None  # None when the attempt timed out or could not connect
    error: str | None
    at: datetime

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "event_id": self.event_id,
            "webhook_id": self.webhook_id,
            "topic": self.topic,
            "target_url": self.target_url,
            "status": self.status,
            "error": self.error,
            "at": self.at.isoformat(),
            "body_sha256": hashlib.sha256(self.body).hexdigest(),
        }


@dataclass
class WebhookDelivery:
    """A webhook and all its attempts; `delivered` is True once a 2xx came back."""

    event_id: str
    webhook_id: str
    topic: str
    target_url: str
    attempts: list[DeliveryAttempt] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return any(a.succeeded for a in self.attempts)


class WebhookSender:
    """Signs, sends and retries webhooks; keeps every attempt in `deliveries`."""

    def __init__(
        self,
        *,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        connect_timeout_s: float = 1.0,
        total_timeout_s: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.retry_delays = tuple(retry_delays)
        self.connect_timeout_s = connect_timeout_s
        self.total_timeout_s = total_timeout_s
        self.sleep = sleep
        self.now = now
        self.deliveries: list[WebhookDelivery] = []
        self._lock = threading.Lock()

    async def deliver(
        self,
        target_url: str,
        topic: str,
        payload: Mapping[str, Any] | bytes,
        *,
        secret: str,
        shop_domain: str,
        api_version: str,
        event_id: str | None = None,
        webhook_id: str | None = None,
        retry_delays: Sequence[float] | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> WebhookDelivery:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        delivery = WebhookDelivery(
            event_id=event_id or str(uuid.uuid4()),
            webhook_id=webhook_id or str(uuid.uuid4()),
            topic=topic,
            target_url=target_url,
        )
        with self._lock:
            self.deliveries.append(delivery)
        triggered_at = self.now()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign_body(body, secret),
            "X-Shopify-Shop-Domain": shop_domain,
            "X-Shopify-API-Version": api_version,
            "X-Shopify-Webhook-Id": delivery.webhook_id,
            "X-Shopify-Event-Id": delivery.event_id,
            "X-Shopify-Triggered-At": triggered_at.isoformat().replace("+00:00", "Z"),
            **(extra_headers or {}),
        }
        delays = tuple(self.retry_delays if retry_delays is None else retry_delays)
        timeout = httpx.Timeout(self.total_timeout_s, connect=self.connect_timeout_s)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
            for attempt in range(1, len(delays) + 2):
                status, error = await self._post(http, target_url, body, headers)
                delivery.attempts.append(
                    DeliveryAttempt(
                        attempt, delivery.event_id, delivery.webhook_id, topic, target_url,
                        body, dict(headers), status, error, self.now(),
                    )
                )  # fmt: skip
                if delivery.attempts[-1].succeeded or attempt > len(delays):
                    break
                await self.sleep(delays[attempt - 1])
        return delivery

    async def _post(
        self, http: httpx.AsyncClient, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int | None, str | None]:
        try:
            async with asyncio.timeout(self.total_timeout_s):
                response = await http.post(url, content=body, headers=dict(headers))
        except (TimeoutError, httpx.TimeoutException):
            return None, "timeout"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"

    def attempts_for(self, event_id: str) -> list[DeliveryAttempt]:
        with self._lock:
            return [a for d in self.deliveries if d.event_id == event_id for a in d.attempts]

    def clear(self) -> None:
        with self._lock:
            self.deliveries.clear()
