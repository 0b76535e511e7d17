"""Parsing of ShipStation webhook deliveries (SHIP_NOTIFY and friends).

ShipStation does not sign deliveries: the body is only `{resource_url, resource_type}` and the
data must be fetched from `resource_url` with the account's Basic credentials. So the intake must
authenticate the sender another way: register the webhook with a long random secret token in the
target URL path (e.g. `/hooks/shipstation/{token}`), compare it in constant time, and only fetch
`resource_url` when it points at the configured ShipStation API host (`allowed_base_url`), or a
forged delivery could make us send our credentials anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind

SYSTEM = "shipstation"
RESOURCE_TYPES = frozenset(
    {
        "ORDER_NOTIFY",
        "ITEM_ORDER_NOTIFY",
        "SHIP_NOTIFY",
        "ITEM_SHIP_NOTIFY",
        "FULFILLMENT_SHIPPED",
        "FULFILLMENT_REJECTED",
    }
)
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class ShipStationNotification:
    resource_url: str
    resource_type: str

    def __iter__(self) -> Iterator[str]:
        """Unpacks as `(resource_url, resource_type)`."""
        return iter((self.resource_url, self.resource_type))


def _invalid(message: str, code: str) -> ConnectorError:
    return ConnectorError(
        message, kind=FailureKind.DATA, category=FailureCategory.VALIDATION, system=SYSTEM, status=400, vendor_code=code
    )


def parse_ship_notify(raw_body: bytes, *, allowed_base_url: str | None = None) -> ShipStationNotification:
    """Validate a delivery body; raise a classified `ConnectorError` when it is not one.

    With `allowed_base_url`, a `resource_url` elsewhere is rejected as kind AUTH (it would leak
    the account credentials when fetched).
    """
    if len(raw_body) > MAX_BODY_BYTES:
        raise _invalid(
            f"ShipStation webhook body is {len(raw_body)} bytes; a notification is tiny.", "payload_too_large"
        )
    try:
        body = orjson.loads(raw_body)
    except orjson.JSONDecodeError as exc:
        raise _invalid(f"ShipStation webhook body is not valid JSON ({exc}).", "malformed_json") from None
    if not isinstance(body, dict):
        raise _invalid("ShipStation webhook body must be a JSON object.", "invalid_shape")
    url, kind = body.get("resource_url"), body.get("resource_type")
    if not isinstance(url, str) or not url:
        raise _invalid("ShipStation webhook has no resource_url.", "missing_resource_url")
    if kind not in RESOURCE_TYPES:
        raise _invalid(f"ShipStation webhook has an unknown resource_type {kind!r}.", "unknown_resource_type")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid("ShipStation webhook resource_url is not an absolute http(s) URL.", "invalid_resource_url")
    if allowed_base_url is not None:
        allowed = urlsplit(allowed_base_url)
        same_origin = (parts.scheme, parts.netloc) == (allowed.scheme, allowed.netloc)
        if not same_origin or not parts.path.startswith(allowed.path.rstrip("/") + "/"):
            raise ConnectorError(
                "ShipStation webhook resource_url points outside the configured ShipStation API; refusing to fetch it.",
                kind=FailureKind.AUTH,
                category=FailureCategory.AUTH,
                system=SYSTEM,
                status=401,
                vendor_code="foreign_resource_url",
            )
    return ShipStationNotification(url, str(kind))
