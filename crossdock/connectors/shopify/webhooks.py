"""Verification of incoming Shopify webhooks: HMAC over the raw body first, parsing second.

`verify_shopify_webhook` compares `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body with
the app's client secret) in constant time against every configured secret, so a secret can be
rotated by accepting old and new for a while. Only then is the body parsed. Failures are
`ConnectorError`s: a missing/forged signature or a stale/replayed delivery is kind AUTH (the
intake answers 401 `invalid_signature`; `vendor_code` tells them apart), and an authentic but
unreadable body is kind DATA / VALIDATION.

Deduplicate on `event_id` (`X-Shopify-Event-Id`, identical across retries of one event); older
API versions do not send it, in which case the webhook id stands in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind

SYSTEM = "shopify"


@dataclass(frozen=True)
class ShopifyWebhook:
    """An authenticated Shopify webhook."""

    topic: str
    event_id: str
    webhook_id: str
    shop_domain: str
    triggered_at: datetime | None
    api_version: str | None
    payload: Any
    secret_index: int  # which of the configured secrets matched (0 = current)


def _reject(message: str, code: str, kind: FailureKind = FailureKind.AUTH) -> ConnectorError:
    category = FailureCategory.AUTH if kind is FailureKind.AUTH else FailureCategory.VALIDATION
    return ConnectorError(
        message,
        kind=kind,
        category=category,
        system=SYSTEM,
        status=401 if kind is FailureKind.AUTH else 400,
        vendor_code=code,
    )


def _matching_secret(raw_body: bytes, signature: str, secrets: Sequence[str]) -> int | None:
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    matched = None
    for i, secret in enumerate(secrets):
        expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()
        # Check every secret so the time taken does not reveal which one matched.
        if hmac.compare_digest(expected, given) and matched is None:
            matched = i
    return matched


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def verify_shopify_webhook(
    raw_body: bytes,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    *,
    max_age_s: float | None = None,
    now: datetime | None = None,
    max_clock_skew_s: float = 300.0,
) -> ShopifyWebhook:
    """Authenticate a delivery and return it parsed; raise a classified `ConnectorError` otherwise.

    `secret` may be a list (current first) to accept deliveries signed with a retiring secret.
    With `max_age_s`, a delivery whose `X-Shopify-Triggered-At` is older (or further in the
    future than `max_clock_skew_s`) is rejected as stale.
    """
    h = {k.lower(): v for k, v in headers.items()}
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not any(secrets):
        raise ConnectorError(
            "No Shopify app secret is configured, so webhooks cannot be verified.",
            kind=FailureKind.CONFIG,
            category=FailureCategory.AUTH,
            system=SYSTEM,
            vendor_code="no_secret",
        )
    signature = h.get("x-shopify-hmac-sha256")
    if not signature:
        raise _reject("Shopify webhook has no X-Shopify-Hmac-Sha256 header.", "missing_signature")
    index = _matching_secret(raw_body, signature, [s for s in secrets if s])
    if index is None:
        raise _reject("Shopify webhook signature does not match the app secret.", "invalid_signature")

    triggered_at = _parse_time(h.get("x-shopify-triggered-at"))
    if max_age_s is not None:
        current = now or datetime.now(UTC)
        if triggered_at is None:
            raise _reject("Shopify webhook has no valid X-Shopify-Triggered-At; cannot check its age.", "stale_webhook")
        age = (current - triggered_at).total_seconds()
        if age > max_age_s or age < -max_clock_skew_s:
            raise _reject(
                f"Shopify webhook was triggered {age:.0f}s ago (limit {max_age_s:.0f}s); rejected as stale.",
                "stale_webhook",
            )

    topic = h.get("x-shopify-topic")
    webhook_id = h.get("x-shopify-webhook-id", "")
    event_id = h.get("x-shopify-event-id") or webhook_id
    if not topic or not event_id:
        raise _reject(
            "Shopify webhook lacks X-Shopify-Topic or an event/webhook id.", "missing_header", FailureKind.DATA
        )
    try:
        payload = orjson.loads(raw_body)
    except orjson.JSONDecodeError as exc:
        raise _reject(f"Shopify webhook body is not valid JSON ({exc}).", "malformed_json", FailureKind.DATA) from None
    return ShopifyWebhook(
        topic=topic,
        event_id=event_id,
        webhook_id=webhook_id,
        shop_domain=h.get("x-shopify-shop-domain", ""),
        triggered_at=triggered_at,
        api_version=h.get("x-shopify-api-version"),
        payload=payload,
        secret_index=index,
    )
