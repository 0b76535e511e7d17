"""Maps Shopify error responses onto Crossdock's failure kinds and taxonomy categories.

The same status means different things depending on the call: a 422 from `fulfillments.json`
is a fulfillment-state problem (no open fulfillment order), a 404 for a variant or inventory item
is a SKU/master-data problem, and a 404 for an order is a plain missing record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import httpx

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.transport import describe, float_header

SYSTEM = "shopify"


class Context(StrEnum):
    """What kind of resource a call touched; refines how its errors are classified."""

    GENERIC = "generic"
    ORDER = "order"
    CATALOG = "catalog"
    INVENTORY = "inventory"
    FULFILLMENT = "fulfillment"
    REFUND = "refund"
    GRAPHQL = "graphql"


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:300]


def _field_errors(response: httpx.Response) -> bool:
    """True when the body is `{"errors": {field: [...]}}` (bad input rather than a state conflict)."""
    body = _body(response)
    return isinstance(body, dict) and isinstance(body.get("errors"), dict)


def classify_response(response: httpx.Response, context: Context = Context.GENERIC) -> ConnectorError:
    """A `ConnectorError` for a non-2xx Shopify response."""
    status = response.status_code
    detail = describe(_body(response))
    where = f"{response.request.method} {response.request.url.path}"
    kind, category, advice = FailureKind.DATA, FailureCategory.UNKNOWN, "Check the request data."
    if status in (401, 403):
        kind, category = FailureKind.AUTH, FailureCategory.AUTH
        advice = "Reconnect the shop: the access token is invalid, revoked or lacks the scope."
    elif status == 404:
        if context in (Context.CATALOG, Context.INVENTORY):
            category, advice = FailureCategory.SKU_NOT_FOUND, "Fix the SKU/variant mapping, then replay."
        else:
            category, advice = FailureCategory.NOT_FOUND, "The record does not exist in Shopify (deleted or wrong id)."
    elif status == 422 and context is Context.FULFILLMENT and not _field_errors(response):
        category = FailureCategory.FULFILLMENT_STATE
        advice = "The order has no open fulfillment order for these lines (already fulfilled or closed)."
    elif status == 422 and context is Context.INVENTORY and "does not exist" in detail:
        category, advice = (
            FailureCategory.SKU_NOT_FOUND,
            "The inventory item is unknown; fix the SKU mapping, then replay.",
        )
    elif status in (400, 413, 422):
        category, advice = FailureCategory.VALIDATION, "Fix the field values, then replay."
    elif status in (402, 423):
        kind, category = FailureKind.CONFIG, FailureCategory.CONNECTION
        advice = "The shop is frozen or locked (unpaid plan or closed store)."
    elif status == 429 or status >= 500:
        kind, category = (
            FailureKind.TRANSIENT,
            (FailureCategory.RATE_LIMIT if status == 429 else FailureCategory.CONNECTION),
        )
        advice = "Transient; retry later."
    return ConnectorError(
        f"Shopify rejected {where} with HTTP {status}: {detail}. {advice}",
        kind=kind,
        category=category,
        system=SYSTEM,
        status=status,
        retry_after=float_header(response, "retry-after"),
        details={"context": str(context), "errors": _body(response) if status < 500 else None},
    )


def classify_graphql_errors(errors: Sequence[Any], status: int, *, field: str | None = None) -> ConnectorError:
    """A `ConnectorError` for top-level GraphQL `errors` or a mutation's `userErrors`."""
    first: Mapping[str, Any] = next((e for e in errors if isinstance(e, dict)), {})
    code = str((first.get("extensions") or {}).get("code") or first.get("code") or "") or None
    message = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)[:500]
    kind, category = FailureKind.DATA, FailureCategory.VALIDATION
    if code in ("ACCESS_DENIED", "UNAUTHORIZED"):
        kind, category = FailureKind.AUTH, FailureCategory.AUTH
    elif code in ("INVALID_INVENTORY_ITEM", "INVALID_LOCATION"):
        category = FailureCategory.SKU_NOT_FOUND
    elif code in ("MAX_COST_EXCEEDED", "undefinedField", "parseError"):
        kind = FailureKind.CONFIG
    elif code == "INTERNAL_SERVER_ERROR":
        kind, category = FailureKind.TRANSIENT, FailureCategory.CONNECTION
    where = f"mutation {field}" if field else "GraphQL request"
    return ConnectorError(
        f"Shopify rejected the {where}: {message}",
        kind=kind,
        category=category,
        system=SYSTEM,
        status=status,
        vendor_code=code,
        details={"errors": list(errors)[:10]},
    )
