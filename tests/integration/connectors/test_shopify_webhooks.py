"""Shopify webhooks end to end: signed delivery, retries with the same event and body, verification."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.sandbox.serve import serve_in_thread
from crossdock.connectors.sandbox.shopify import create_shopify_app
from crossdock.connectors.sandbox.shopify_orders import make_order
from crossdock.connectors.sandbox.shopify_state import DEFAULT_SHOP, DEFAULT_TOKEN, ShopifySimulator
from crossdock.connectors.shopify import ShopifyClient, verify_shopify_webhook

SECRET = "shpss_current"
OLD_SECRET = "shpss_retiring"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Receiver:
    """A webhook endpoint that answers with scripted statuses and records what it got."""

    statuses: list[int] = field(default_factory=list)
    delay_s: float = 0.0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def endpoint(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.statuses.pop(0) if self.statuses else 200
        headers = {"Location": "/elsewhere"} if 300 <= status < 400 else None
        return Response(status_code=status, headers=headers)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with serve_in_thread(Starlette(routes=[Route("/hooks/shopify", rec.endpoint, methods=["POST"])])) as srv:
        yield rec, f"{srv.url}/hooks/shopify"


def signed(body: bytes, secret: str = SECRET, **extra: str) -> dict[str, str]:
    return {
        "X-Shopify-Hmac-Sha256": base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode(),
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": DEFAULT_SHOP,
        "X-Shopify-Webhook-Id": "wh-1",
        "X-Shopify-Event-Id": "ev-1",
        "X-Shopify-Triggered-At": (NOW - timedelta(seconds=30)).isoformat(),
        "X-Shopify-API-Version": "2025-07",
        **extra,
    }


# ----- verification ----------------------------------------------------------------------------
def test_valid_webhook_is_parsed_after_verification() -> None:
    body = orjson.dumps(make_order(1))
    hook = verify_shopify_webhook(body, signed(body), SECRET, max_age_s=300, now=NOW)
    assert (hook.topic, hook.event_id, hook.webhook_id, hook.shop_domain, hook.api_version) == (
        "orders/create",
        "ev-1",
        "wh-1",
        DEFAULT_SHOP,
        "2025-07",
    )
    assert hook.triggered_at == NOW - timedelta(seconds=30)
    assert hook.payload["name"] == "#1002"
    assert hook.secret_index == 0


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"X-Shopify-Hmac-Sha256": ""}, "missing_signature"),
        ({"X-Shopify-Hmac-Sha256": base64.b64encode(b"x" * 32).decode()}, "invalid_signature"),
        ({"X-Shopify-Hmac-Sha256": "not base64 !!"}, "invalid_signature"),
    ],
)
def test_missing_or_forged_signature_is_auth(headers: dict[str, str], code: str) -> None:
    body = b'{"id": 1}'
    with pytest.raises(ConnectorError) as info:
        verify_shopify_webhook(body, {**signed(body), **headers}, SECRET, max_age_s=None)
    assert (info.value.kind, info.value.category, info.value.vendor_code) == (
        FailureKind.AUTH,
        FailureCategory.AUTH,
        code,
    )


def test_tampered_body_is_rejected_even_if_json_equivalent() -> None:
    body = b'{"id": 1}'
    with pytest.raises(ConnectorError) as info:
        verify_shopify_webhook(b'{"id":1}', signed(body), SECRET, max_age_s=None)
    assert info.value.vendor_code == "invalid_signature"


def test_rotation_accepts_retiring_secret_and_reports_which() -> None:
    body = b'{"id": 2}'
    hook = verify_shopify_webhook(body, signed(body, OLD_SECRET), [SECRET, OLD_SECRET], max_age_s=None)
    assert hook.secret_index == 1
    with pytest.raises(ConnectorError):
        verify_shopify_webhook(body, signed(body, OLD_SECRET), [SECRET], max_age_s=None)


def test_stale_triggered_at_is_rejected() -> None:
    body = b'{"id": 3}'
    old = signed(body, **{"X-Shopify-Triggered-At": (NOW - timedelta(minutes=10)).isoformat()})
    with pytest.raises(ConnectorError) as info:
        verify_shopify_webhook(body, old, SECRET, max_age_s=300, now=NOW)
    assert (info.value.kind, info.value.vendor_code) == (FailureKind.AUTH, "stale_webhook")
    # without an age limit the same delivery is fine (retries legitimately arrive hours later)
    assert verify_shopify_webhook(body, old, SECRET, max_age_s=None).payload == {"id": 3}


def test_malformed_json_with_valid_signature_is_validation() -> None:
    body = b'{"id": 4,'
    with pytest.raises(ConnectorError) as info:
        verify_shopify_webhook(body, signed(body), SECRET, max_age_s=None)
    assert (info.value.kind, info.value.category, info.value.vendor_code) == (
        FailureKind.DATA,
        FailureCategory.VALIDATION,
        "malformed_json",
    )


def test_headers_are_case_insensitive() -> None:
    body = b"{}"
    lower = {k.lower(): v for k, v in signed(body).items()}
    assert verify_shopify_webhook(body, lower, SECRET, max_age_s=None).event_id == "ev-1"


# ----- delivery --------------------------------------------------------------------------------
async def test_retries_reuse_event_id_and_original_body(receiver: tuple[Receiver, str]) -> None:
    # given an endpoint that fails twice (500, then a redirect, which also counts as failure)
    rec, url = receiver
    rec.statuses = [500, 302]
    sim = ShopifySimulator(webhook_retry_delays=(0.01, 0.02, 0.04))
    payload = make_order(9)
    # when the simulator delivers one event
    delivery = await sim.deliver_webhook(url, "orders/create", payload, secret=SECRET, event_id="evt-42")
    # then it took three attempts, all with the same event id, webhook id, body and signature
    assert delivery.delivered
    assert [a.status for a in delivery.attempts] == [500, 302, 200]
    assert len(rec.received) == 3
    bodies = {body for _, body in rec.received}
    assert bodies == {orjson.dumps(payload)}
    assert {h["x-shopify-event-id"] for h, _ in rec.received} == {"evt-42"}
    assert len({h["x-shopify-webhook-id"] for h, _ in rec.received}) == 1
    for headers, body in rec.received:
        hook = verify_shopify_webhook(body, headers, SECRET, max_age_s=60)
        assert (hook.topic, hook.event_id, hook.payload["id"]) == ("orders/create", "evt-42", payload["id"])
    assert [a.attempt for a in sim.sender.attempts_for("evt-42")] == [1, 2, 3]


async def test_timeouts_count_as_failures_and_retries_run_out(receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    rec.delay_s = 0.3
    sim = ShopifySimulator(webhook_retry_delays=(0.01, 0.01))
    sim.sender.total_timeout_s = 0.1
    delivery = await sim.deliver_webhook(url, "refunds/create", {"id": 1}, secret=SECRET)
    assert not delivery.delivered
    assert [(a.status, a.error) for a in delivery.attempts] == [(None, "timeout")] * 3


async def test_subscription_receives_signed_orders_create_from_control_api(receiver: tuple[Receiver, str]) -> None:
    # given a shop whose app subscribed to orders/create twice (two endpoints)
    rec, url = receiver
    sim = ShopifySimulator(app_secret=SECRET, webhook_retry_delays=(0.01,))
    with serve_in_thread(create_shopify_app(sim)) as srv:
        async with ShopifyClient(srv.url, DEFAULT_TOKEN) as shop:
            hook = await shop.register_webhook("orders/create", url)
            await shop.register_webhook("orders/create", url + "?copy=1")
            with pytest.raises(ConnectorError) as dup:
                await shop.register_webhook("orders/create", url)
        # when two orders are created through the control API
        import httpx

        async with httpx.AsyncClient() as http:
            created = await http.post(f"{srv.url}/_control/orders", json={"generate": 2, "seed": 100, "notify": True})
        for _ in range(200):
            if len(rec.received) >= 4:
                break
            await asyncio.sleep(0.01)
    # then each order is delivered to both subscriptions with one shared event id per order
    assert created.status_code == 201
    assert hook["topic"] == "orders/create"
    assert (dup.value.category, dup.value.status) == (FailureCategory.VALIDATION, 422)
    assert len(rec.received) == 4
    hooks = [verify_shopify_webhook(body, headers, SECRET, max_age_s=60) for headers, body in rec.received]
    by_event: dict[str, set[str]] = {}
    for h in hooks:
        by_event.setdefault(h.event_id, set()).add(h.webhook_id)
    assert sorted(h.payload["name"] for h in hooks) == ["#1101", "#1101", "#1102", "#1102"]
    assert [len(ids) for ids in by_event.values()] == [2, 2]
