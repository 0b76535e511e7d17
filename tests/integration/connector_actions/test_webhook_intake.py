"""Webhook intake routes over ASGI against the real database: verification before parsing, dedup,
fan-out to subscribed flows of the connection's merchant only, and nothing stored on rejection."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from crossdock.bootstrap import Container
from crossdock.connectors.intake_api import router as intake_router
from crossdock.connectors.sandbox.shopify_delivery import sign_body
from crossdock.connectors.sandbox.shopify_orders import make_order
from crossdock.connectors.sandbox.shopify_state import DEFAULT_SHOP
from crossdock.engine.api import hooks_router
from crossdock.engine.core import Engine
from crossdock.engine.models import Run, Trigger
from tests.integration.engine.conftest import new_merchant, publish

from .conftest import SHIPSTATION_TOKEN, SHOPIFY_SECRET, SandboxServer, shipstation_connection, shopify_connection

STEPS = [{"id": "echo", "type": "map", "output": "=input"}]


@pytest.fixture
async def api(container: Container, engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    from crossdock.web.app import create_app

    app = create_app(container)
    app.include_router(intake_router)
    app.include_router(hooks_router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crossdock.test") as client:
        yield client


async def subscribe(
    container: Container, engine: Engine, merchant: str, verifier: str, connection: str, topic: str | None
) -> str:
    trigger: dict[str, Any] = {"type": "webhook", "name": "hook", "verifier": verifier, "connection_id": connection}
    if topic:
        trigger["topic"] = topic
    return await publish(
        container, engine, merchant, f"f-{uuid.uuid4().hex[:8]}", {"triggers": [trigger], "steps": STEPS}
    )


def shopify_headers(body: bytes, event_id: str = "ev-1", secret: str = SHOPIFY_SECRET, **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Hmac-Sha256": sign_body(body, secret),
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": DEFAULT_SHOP,
        "X-Shopify-Webhook-Id": "wh-1",
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        "X-Shopify-API-Version": "2025-07",
        **extra,
    }


async def counts(container: Container) -> int:
    """Runs stored: a webhook's run is its stored event (payload as input, headers in the trigger)."""
    async with container.db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(Run))).scalar_one())


@pytest.fixture
async def shop_conn(container: Container, merchant: str, sandbox_server: SandboxServer, engine: Engine) -> str:
    return await shopify_connection(container, merchant, sandbox_server.url, webhook_max_age_s=300)


# -- Shopify ----------------------------------------------------------------------------------------
async def test_valid_webhook_starts_one_run_and_retries_are_duplicates(
    api: httpx.AsyncClient, container: Container, engine: Engine, merchant: str, shop_conn: str
) -> None:
    flow_id = await subscribe(container, engine, merchant, "shopify", shop_conn, "orders/create")
    order = make_order(1)
    body = orjson.dumps(order)

    answers = [
        await api.post(f"/hooks/shopify/{shop_conn}", content=body, headers=shopify_headers(body)) for _ in range(4)
    ]

    assert [a.status_code for a in answers] == [200] * 4
    first = answers[0].json()
    assert first["duplicate"] is False and [r["flow_id"] for r in first["runs"]] == [flow_id]
    assert all(
        a.json() == {**first, "duplicate": True, "runs": [{**first["runs"][0], "duplicate": True}]} for a in answers[1:]
    )
    assert await counts(container) == 1
    async with container.db.engine.connect() as conn:
        run_input, trigger = (await conn.execute(select(Run.input, Run.trigger))).one()
    headers = trigger["headers"]
    assert run_input == order
    assert trigger["event_id"] == first["runs"][0]["event_id"]
    assert (trigger["kind"], headers["x-shopify-topic"], headers["x-shopify-event-id"]) == (
        "webhook",
        "orders/create",
        "ev-1",
    )


@pytest.mark.parametrize(
    ("mutate", "status", "code", "reason"),
    [
        (lambda h: h.pop("X-Shopify-Hmac-Sha256"), 401, "invalid_signature", "missing_signature"),
        (
            lambda h: h.update({"X-Shopify-Hmac-Sha256": sign_body(b"{}", SHOPIFY_SECRET)}),
            401,
            "invalid_signature",
            "invalid_signature",
        ),
        (
            lambda h: h.update({"X-Shopify-Hmac-Sha256": sign_body(b"x", "guess")}),
            401,
            "invalid_signature",
            "invalid_signature",
        ),
        (
            lambda h: h.update({"X-Shopify-Triggered-At": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}),
            401,
            "invalid_signature",
            "stale_webhook",
        ),
    ],
    ids=["missing-hmac", "hmac-of-other-body", "wrong-secret", "stale"],
)
async def test_rejected_deliveries_store_nothing(
    api: httpx.AsyncClient,
    container: Container,
    engine: Engine,
    merchant: str,
    shop_conn: str,
    mutate: Any,
    status: int,
    code: str,
    reason: str,
) -> None:
    await subscribe(container, engine, merchant, "shopify", shop_conn, "orders/create")
    body = orjson.dumps(make_order(2))
    headers = shopify_headers(body)
    mutate(headers)

    answer = await api.post(f"/hooks/shopify/{shop_conn}", content=body, headers=headers)

    assert (answer.status_code, answer.json()["error"]["code"], answer.json()["error"]["details"]["reason"]) == (
        status,
        code,
        reason,
    )
    assert await counts(container) == 0


async def test_malformed_json_oversized_and_unknown_connection(
    api: httpx.AsyncClient, container: Container, engine: Engine, merchant: str, shop_conn: str
) -> None:
    await subscribe(container, engine, merchant, "shopify", shop_conn, "orders/create")
    bad = b'{"id": 1,'
    limit = container.settings.api.max_body_bytes
    huge = b'{"pad": "' + b"x" * limit + b'"}'

    malformed = await api.post(f"/hooks/shopify/{shop_conn}", content=bad, headers=shopify_headers(bad))
    oversized = await api.post(f"/hooks/shopify/{shop_conn}", content=huge, headers=shopify_headers(huge))
    unknown = await api.post("/hooks/shopify/con_nope", content=b"{}", headers=shopify_headers(b"{}"))

    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "malformed_json")
    assert (oversized.status_code, oversized.json()["error"]["code"]) == (413, "payload_too_large")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    assert await counts(container) == 0


async def test_unsubscribed_topic_is_acknowledged_and_counted(
    api: httpx.AsyncClient, container: Container, engine: Engine, merchant: str, shop_conn: str
) -> None:
    await subscribe(container, engine, merchant, "shopify", shop_conn, "refunds/create")
    body = orjson.dumps(make_order(3))

    answer = await api.post(f"/hooks/shopify/{shop_conn}", content=body, headers=shopify_headers(body))

    assert (answer.status_code, answer.json()) == (
        200,
        {"runs": [], "duplicate": False, "ignored": "no flow subscribes to topic orders/create"},
    )
    assert await counts(container) == 0
    assert (
        container.metrics.registry.get_sample_value(
            "crossdock_connector_webhooks_total", {"system": "shopify", "outcome": "ignored"}
        )
        == 1.0
    )


async def test_fan_out_to_every_subscriber_of_the_merchant_only(
    api: httpx.AsyncClient, container: Container, engine: Engine, merchant: str, shop_conn: str
) -> None:
    all_topics = await subscribe(container, engine, merchant, "shopify", shop_conn, None)
    orders = await subscribe(container, engine, merchant, "shopify", shop_conn, "orders/create")
    intruder = await new_merchant(container, "Intruder")
    await subscribe(container, engine, intruder, "shopify", shop_conn, "orders/create")
    body = orjson.dumps(make_order(4))

    answer = await api.post(f"/hooks/shopify/{shop_conn}", content=body, headers=shopify_headers(body, "ev-9"))

    assert answer.status_code == 200
    assert sorted(r["flow_id"] for r in answer.json()["runs"]) == sorted([all_topics, orders])
    async with container.db.engine.connect() as conn:
        merchants = (await conn.execute(select(Run.merchant_id))).scalars().all()
    assert merchants == [merchant, merchant]


async def test_generic_route_with_the_shopify_verifier(
    api: httpx.AsyncClient, container: Container, engine: Engine, merchant: str, shop_conn: str
) -> None:
    flow_id = await subscribe(container, engine, merchant, "shopify", shop_conn, "orders/create")
    async with container.db.engine.connect() as conn:
        endpoint = (await conn.execute(select(Trigger.id).where(Trigger.flow_id == flow_id))).scalar_one()
    body = orjson.dumps(make_order(5))

    ok = await api.post(f"/hooks/{endpoint}", content=body, headers=shopify_headers(body))
    forged = await api.post(f"/hooks/{endpoint}", content=body, headers=shopify_headers(body, secret="guess"))

    assert (ok.status_code, ok.json()["duplicate"]) == (200, False)
    assert forged.status_code == 401
    assert await counts(container) == 1


# -- ShipStation ------------------------------------------------------------------------------------
async def test_shipstation_hook_token_origin_and_dedup(
    api: httpx.AsyncClient, container: Container, engine: Engine, merchant: str, sandbox_server: SandboxServer
) -> None:
    conn = await shipstation_connection(container, merchant, sandbox_server.url)
    flow_id = await subscribe(container, engine, merchant, "shipstation", conn, "SHIP_NOTIFY")
    url = f"{sandbox_server.url}/shipstation/shipments?batchId=7&includeShipmentItems=False"
    body = orjson.dumps({"resource_url": url, "resource_type": "SHIP_NOTIFY"})
    foreign = orjson.dumps({"resource_url": "https://evil.test/shipments?batchId=7", "resource_type": "SHIP_NOTIFY"})

    wrong_token = await api.post(f"/hooks/shipstation/{conn}/not-the-token", content=body)
    elsewhere = await api.post(f"/hooks/shipstation/{conn}/{SHIPSTATION_TOKEN}", content=foreign)
    assert await counts(container) == 0
    first = await api.post(f"/hooks/shipstation/{conn}/{SHIPSTATION_TOKEN}", content=body)
    again = await api.post(f"/hooks/shipstation/{conn}/{SHIPSTATION_TOKEN}", content=body)

    assert (wrong_token.status_code, wrong_token.json()["error"]["details"]["reason"]) == (401, "invalid_token")
    assert (elsewhere.status_code, elsewhere.json()["error"]["details"]["reason"]) == (401, "foreign_resource_url")
    assert (first.status_code, first.json()["duplicate"], [r["flow_id"] for r in first.json()["runs"]]) == (
        200,
        False,
        [flow_id],
    )
    assert (again.json()["duplicate"], again.json()["runs"][0]["run_id"]) == (True, first.json()["runs"][0]["run_id"])
    async with container.db.engine.connect() as conn_:
        run_input = (await conn_.execute(select(Run.input))).scalar_one()
    assert run_input == {"resource_url": url, "resource_type": "SHIP_NOTIFY", "connection": conn}


# -- the bare ASGI route in front of FastAPI ---------------------------------------------------------
async def test_fast_route_answers_like_the_declared_route(
    api: httpx.AsyncClient, container: Container, engine: Engine, merchant: str, shop_conn: str
) -> None:
    """The served app answers /hooks/shopify through `ShopifyIntakeRoute`; an app with only the declared
    FastAPI route must give the same bodies, codes and stored rows (one run for both deliveries)."""
    from fastapi import FastAPI

    from crossdock.web.errors import install_error_handlers

    await subscribe(container, engine, merchant, "shopify", shop_conn, "orders/create")
    plain = FastAPI()
    plain.state.container = container
    install_error_handlers(plain)
    plain.include_router(intake_router)
    transport = httpx.ASGITransport(app=plain)
    body = orjson.dumps(make_order(7))
    forged = shopify_headers(body, secret="guess")
    cases = [
        (f"/hooks/shopify/{shop_conn}", body, shopify_headers(body, event_id="ev-fast")),
        (f"/hooks/shopify/{shop_conn}", body, forged),
        ("/hooks/shopify/con_nope", body, shopify_headers(body)),
        (f"/hooks/shopify/{shop_conn}", b"{oops", shopify_headers(b"{oops")),
    ]
    async with httpx.AsyncClient(transport=transport, base_url="http://plain.test") as declared:
        for path, content, headers in cases:
            fast = await api.post(path, content=content, headers=headers)
            slow = await declared.post(path, content=content, headers=headers)
            expected = fast.json()
            if fast.status_code == 200:  # the second delivery of the same event is the duplicate
                expected = {**expected, "duplicate": True, "runs": [{**expected["runs"][0], "duplicate": True}]}
            assert (slow.status_code, slow.json()) == (fast.status_code, expected), path
            assert fast.headers["content-type"] == "application/json"
            assert fast.headers["x-request-id"]
    assert await counts(container) == 1
    labelled = container.metrics.registry.get_sample_value(
        "crossdock_http_requests_total",
        {"method": "POST", "route": "/hooks/shopify/{connection_id}", "status": "200"},
    )
    assert labelled == 1.0
    commits = container.metrics.registry.get_sample_value("crossdock_group_commit_size_count", {"kind": "intake"})
    written = container.metrics.registry.get_sample_value("crossdock_group_commit_size_sum", {"kind": "intake"})
    assert commits is not None and commits >= 1 and written == 2  # the delivery and its duplicate


async def test_fast_route_refuses_a_chunked_body_over_the_limit(
    api: httpx.AsyncClient, container: Container, engine: Engine, merchant: str, shop_conn: str
) -> None:
    await subscribe(container, engine, merchant, "shopify", shop_conn, "orders/create")
    limit = container.settings.api.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the size is only known by reading
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    answer = await api.post(f"/hooks/shopify/{shop_conn}", content=chunks(), headers=shopify_headers(b"x"))

    assert (answer.status_code, answer.json()["error"]["code"]) == (413, "payload_too_large")
    assert await counts(container) == 0
