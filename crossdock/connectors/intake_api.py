"""Webhook intake for connector connections: `POST /hooks/shopify/{connection_id}` and
`POST /hooks/shipstation/{connection_id}/{token}`.

Each route reads the raw body under a size cap, loads the connection, authenticates the delivery
(Shopify: constant-time HMAC over the raw body against the connection's `webhook_secrets`, then
the `X-Shopify-Triggered-At` age; ShipStation: constant-time compare of the path token, then the
`resource_url` must lie on the connection's API) and only then parses it. The event is offered to
every enabled webhook trigger of the connection's merchant that is bound to the connection
(`connection_id`) and subscribes to the topic (`topic`, or every topic when unset), through the
engine's group-commit intake (`store_event`): the answer is sent after the commit, and a retried
delivery (same `X-Shopify-Event-Id`, or the same ShipStation `resource_url`) creates nothing new.

A delivery no flow subscribes to is answered 200 (so the sender stops retrying) and counted in
`crossdock_connector_webhooks_total{outcome="ignored"}` plus a warning log line; the engine has
no table for events without a run yet.

`register_verifiers` also installs a `shopify` verifier for the engine's generic
`/hooks/{endpoint_id}` route, so a trigger with `verifier: shopify` works there too.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import Counter
from pydantic import BaseModel

from crossdock.connectors.actions.pool import ConnectionRow, load_connection
from crossdock.connectors.builtin import ShipStationConfig, ShipStationSecrets, ShopifyConfig, ShopifySecrets
from crossdock.connectors.errors import ConnectorError, FailureKind
from crossdock.connectors.shipstation.webhooks import MAX_BODY_BYTES as SHIPSTATION_MAX_BODY
from crossdock.connectors.shipstation.webhooks import parse_ship_notify
from crossdock.connectors.shopify.webhooks import ShopifyWebhook, verify_shopify_webhook
from crossdock.core.cache import TTLCache
from crossdock.core.errors import CrossdockError, ErrorCode, NotFound
from crossdock.engine.core import Engine, VerifiedEvent, engine_of
from crossdock.engine.intake import Endpoint, find_endpoints, store_event
from crossdock.web.deps import ContainerDep

log = logging.getLogger("crossdock.connectors.intake")

router = APIRouter(tags=["webhooks"])

SHOPIFY_KEPT_HEADERS = (
    "x-shopify-topic",
    "x-shopify-shop-domain",
    "x-shopify-event-id",
    "x-shopify-webhook-id",
    "x-shopify-triggered-at",
    "x-shopify-api-version",
)
METRICS_KEY = "connectors.intake.metrics"
SHOPIFY_ROUTE = "/hooks/shopify/{connection_id}"


class HookRun(BaseModel):
    run_id: str
    flow_id: str
    event_id: str | None
    duplicate: bool


class HookAck(BaseModel):
    """The answer to an accepted delivery: the runs it started (or had started before)."""

    runs: list[HookRun]
    duplicate: bool
    ignored: str | None = None


# -- helpers ----------------------------------------------------------------------------------------
def _counter(container: Any) -> Counter:
    counter = container.extras.get(METRICS_KEY)
    if counter is None:
        counter = Counter(
            "crossdock_connector_webhooks_total",
            "Connector webhook deliveries by system and outcome (stored, duplicate, ignored, rejected).",
            ["system", "outcome"],
            registry=container.metrics.registry,
        )
        container.extras[METRICS_KEY] = counter
    assert isinstance(counter, Counter)
    return counter


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over `limit` bytes without reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def body_too_large(limit: int) -> CrossdockError:
    return CrossdockError(
        f"The webhook body is larger than the {limit}-byte limit.",
        code=ErrorCode.PAYLOAD_TOO_LARGE,
        details={"limit_bytes": limit},
    )


def _rejected(exc: ConnectorError) -> CrossdockError:
    """The HTTP answer for a delivery the connector refused (401 auth, 400 unreadable)."""
    reason = exc.vendor_code or str(exc.category)
    if exc.kind is FailureKind.AUTH:
        code = ErrorCode.INVALID_SIGNATURE
    elif reason == "malformed_json":
        code = ErrorCode.MALFORMED_JSON
    elif exc.kind is FailureKind.CONFIG:
        code = ErrorCode.CONFIGURATION
    else:
        code = ErrorCode.BAD_REQUEST
    return CrossdockError(exc.message, code=code, details={"reason": reason})


# How long an API node trusts what it read of a connection for webhook verification. A secret rotated
# or a connection disabled takes effect within two of these (`TTLCache` answers an entry up to one
# ttl past expiry while it refreshes); in exchange a webhook costs no database read and no
# decryption (measured: ~25% of the intake's CPU on PostgreSQL).
CONNECTION_TTL_S = 5.0
CONNECTIONS_KEY = "intake.connections"


async def _connection(container: Any, connection_id: str, system: str) -> tuple[ConnectionRow, Any, Any]:
    cache: TTLCache[tuple[str, str], tuple[ConnectionRow, Any, Any]] | None = container.extras.get(CONNECTIONS_KEY)
    if cache is None:
        cache = container.extras[CONNECTIONS_KEY] = TTLCache(CONNECTION_TTL_S)

    async def load() -> tuple[ConnectionRow, Any, Any]:
        try:
            return await load_connection(container, connection_id, system)
        except ConnectorError:
            raise NotFound(f"{system} connection", connection_id) from None

    return await cache.get((system, connection_id), load)


def _subscribed(endpoint: Endpoint, row: ConnectionRow, topic: str) -> bool:
    # A trigger of another merchant naming this connection never receives its events.
    wanted = endpoint.config.get("topic")
    return endpoint.merchant_id == row.merchant_id and (not wanted or wanted == topic)


async def _store(
    engine: Engine, container: Any, system: str, row: ConnectionRow, topic: str, event: VerifiedEvent
) -> dict[str, Any]:
    """Offer the event to every subscribed endpoint; the acknowledgement body (`HookAck`'s shape)."""
    counter = _counter(container)
    endpoints = [
        e for e in await find_endpoints(engine, verifier=system, connection_id=row.id) if _subscribed(e, row, topic)
    ]
    if not endpoints:
        counter.labels(system, "ignored").inc()
        log.warning(
            "webhook ignored: no flow subscribes to its topic",
            extra={"system": system, "connection_id": row.id, "topic": topic, "dedup_key": event.dedup_key},
        )
        return {"runs": [], "duplicate": False, "ignored": f"no flow subscribes to topic {topic}"}
    if len(endpoints) == 1:
        results = [await store_event(engine, endpoints[0], event)]
    else:
        results = await asyncio.gather(*(store_event(engine, e, event) for e in endpoints))
    runs = [
        {"run_id": r.run_id, "flow_id": e.flow_id, "event_id": r.event_id, "duplicate": r.duplicate}
        for e, r in zip(endpoints, results, strict=True)
    ]
    duplicate = all(r.duplicate for r in results)
    container.metrics.child(counter, system, "duplicate" if duplicate else "stored").inc()
    return {"runs": runs, "duplicate": duplicate}


# -- Shopify ----------------------------------------------------------------------------------------
async def verify_shopify(
    container: Any, connection_id: str, raw_body: bytes, headers: Mapping[str, str]
) -> tuple[ShopifyWebhook, ConnectionRow]:
    """Authenticate a delivery for a Shopify connection; raise the HTTP-mapped error otherwise."""
    row, config, secrets = await _connection(container, connection_id, "shopify")
    assert isinstance(config, ShopifyConfig) and isinstance(secrets, ShopifySecrets)
    try:
        hook = verify_shopify_webhook(raw_body, headers, secrets.webhook_secrets, max_age_s=config.webhook_max_age_s)
    except ConnectorError as exc:
        _counter(container).labels("shopify", "rejected").inc()
        raise _rejected(exc) from None
    return hook, row


def _shopify_event(hook: ShopifyWebhook, headers: Mapping[str, str]) -> VerifiedEvent:
    # `headers` answers lowercase names: ASGI's (lowercased), Starlette's (case-insensitive) or the
    # engine's lowered copy for `/hooks/{endpoint}`.
    kept = {k: headers[k] for k in SHOPIFY_KEPT_HEADERS if k in headers}
    return VerifiedEvent(dedup_key=hook.event_id, payload=hook.payload, headers=kept)


async def shopify_delivery(
    container: Any, connection_id: str, raw_body: bytes, headers: Mapping[str, str]
) -> dict[str, Any]:
    """Verify and store one Shopify delivery; the acknowledgement body. Raises mapped CrossdockErrors."""
    hook, row = await verify_shopify(container, connection_id, raw_body, headers)
    return await _store(engine_of(container), container, "shopify", row, hook.topic, _shopify_event(hook, headers))


@router.post(
    SHOPIFY_ROUTE,
    response_model=HookAck,
    response_model_exclude_none=True,
    summary="Shopify webhook intake for a connection (HMAC-verified, deduplicated by X-Shopify-Event-Id).",
)
async def receive_shopify(connection_id: str, request: Request, c: ContainerDep) -> dict[str, Any]:
    """Answered 200 only after the event and its runs are committed; a retried event returns the same runs.

    In the served app this path is answered by `ShopifyIntakeRoute` (a bare ASGI route in front of the
    router, the same code below it); this declaration documents it and serves apps built without it."""
    raw = await read_body(request, c.settings.api.max_body_bytes)
    return await shopify_delivery(c, connection_id, raw, request.headers)


# -- ShipStation ------------------------------------------------------------------------------------
@router.post(
    "/hooks/shipstation/{connection_id}/{token}",
    response_model=HookAck,
    response_model_exclude_none=True,
    summary="ShipStation webhook intake (secret path token; resource_url must be on the connection's API).",
)
async def receive_shipstation(connection_id: str, token: str, request: Request, c: ContainerDep) -> dict[str, Any]:
    raw = await read_body(request, SHIPSTATION_MAX_BODY)
    row, config, secrets = await _connection(c, connection_id, "shipstation")
    assert isinstance(config, ShipStationConfig) and isinstance(secrets, ShipStationSecrets)
    if not hmac.compare_digest(token.encode(), secrets.webhook_token.encode()):
        _counter(c).labels("shipstation", "rejected").inc()
        raise CrossdockError(
            "The webhook token in the URL is wrong; register the hook with the connection's webhook_token.",
            code=ErrorCode.INVALID_SIGNATURE,
            details={"reason": "invalid_token"},
        )
    try:
        note = parse_ship_notify(raw, allowed_base_url=config.base_url)
    except ConnectorError as exc:
        _counter(c).labels("shipstation", "rejected").inc()
        raise _rejected(exc) from None
    event = VerifiedEvent(
        dedup_key=hashlib.sha256(note.resource_url.encode()).hexdigest(),
        payload={"resource_url": note.resource_url, "resource_type": note.resource_type, "connection": row.id},
        headers={"content-type": request.headers.get("content-type", "")},
    )
    return await _store(engine_of(c), c, "shipstation", row, note.resource_type, event)


# -- the engine's generic route ---------------------------------------------------------------------
def register_verifiers(engine: Engine, container: Any) -> None:
    """Install the `shopify` verifier used by `/hooks/{endpoint_id}` for triggers with `verifier: shopify`."""

    async def shopify_verifier(raw_body: bytes, headers: Mapping[str, str], config: dict[str, Any]) -> VerifiedEvent:
        connection_id = config.get("connection_id")
        if not connection_id:
            raise CrossdockError(
                "A webhook trigger with verifier 'shopify' needs a connection_id.", code=ErrorCode.CONFIGURATION
            )
        hook, _row = await verify_shopify(container, str(connection_id), raw_body, headers)
        topic = config.get("topic")
        if topic and topic != hook.topic:
            raise CrossdockError(
                f"This endpoint subscribes to {topic!r}, not {hook.topic!r}.",
                code=ErrorCode.BAD_REQUEST,
                details={"reason": "topic_not_subscribed"},
            )
        return _shopify_event(hook, headers)

    engine.register_webhook_verifier("shopify", shopify_verifier)
