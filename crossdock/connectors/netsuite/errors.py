"""Classify NetSuite REST error responses (`o:errorDetails[].o:errorCode`) into `ConnectorError`s."""

from __future__ import annotations

from typing import Any

import httpx

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.transport import vendor_rejection

SYSTEM = "netsuite"

_K = FailureKind
_C = FailureCategory
_BY_CODE: dict[str, tuple[FailureKind, FailureCategory]] = {
    "INVALID_LOGIN": (_K.AUTH, _C.AUTH),
    "INVALID_LOGIN_ATTEMPT": (_K.AUTH, _C.AUTH),
    "INSUFFICIENT_PERMISSION": (_K.AUTH, _C.AUTH),
    "CONCURRENCY_LIMIT_EXCEEDED": (_K.TRANSIENT, _C.RATE_LIMIT),
    "SSS_REQUEST_LIMIT_EXCEEDED": (_K.TRANSIENT, _C.RATE_LIMIT),
    "WS_REQUEST_BLOCKED": (_K.TRANSIENT, _C.RATE_LIMIT),
    "IDEMPOTENCY_ERROR": (_K.DATA, _C.DUPLICATE),
    "NONEXISTENT_ID": (_K.DATA, _C.NOT_FOUND),
    "RCRD_DSNT_EXIST": (_K.DATA, _C.NOT_FOUND),
    "INVALID_PARAMETER": (_K.CONFIG, _C.VALIDATION),
    "INVALID_CONTENT": (_K.CONFIG, _C.VALIDATION),
    "INVALID_REQUEST": (_K.CONFIG, _C.VALIDATION),
    "REQUEST_TOO_LARGE": (_K.DATA, _C.VALIDATION),
    "UNEXPECTED_ERROR": (_K.TRANSIENT, _C.CONNECTION),
}


def error_detail(body: Any) -> tuple[str, str]:
    """(o:errorCode, detail) of the first error detail, or empty strings."""
    details = body.get("o:errorDetails") if isinstance(body, dict) else None
    first = details[0] if isinstance(details, list) and details and isinstance(details[0], dict) else {}
    return str(first.get("o:errorCode", "")), str(first.get("detail", ""))


def classify_response(response: httpx.Response, body: Any) -> ConnectorError:
    status = response.status_code
    code, detail = error_detail(body)
    if not detail:
        detail = (
            (body.get("title") if isinstance(body, dict) else None) or response.text[:300] or response.reason_phrase
        )
    kind, category = _classify(status, code, detail)
    return vendor_rejection("NetSuite", SYSTEM, response, code, detail, kind, category)


def _classify(status: int, code: str, detail: str) -> tuple[FailureKind, FailureCategory]:
    text = detail.lower()
    if status == 429:
        return _K.TRANSIENT, _C.RATE_LIMIT
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in (401, 403):
        return _K.AUTH, _C.AUTH
    if code == "INVALID_KEY_OR_REF":
        if "item reference" in text:
            return _K.DATA, _C.SKU_NOT_FOUND
        if "entity reference" in text or "customer" in text:
            return _K.DATA, _C.BAD_CUSTOMER
        return _K.DATA, _C.MAPPING_GAP
    if code == "USER_ERROR":
        if "credit hold" in text or "credit limit" in text:
            return _K.DATA, _C.CREDIT_HOLD
        if "already fully" in text:
            return _K.DATA, _C.FULFILLMENT_STATE
        if "external id" in text and "already exists" in text:
            return _K.DATA, _C.DUPLICATE
        return _K.DATA, _C.VALIDATION
    if status == 404:
        return _K.DATA, _C.NOT_FOUND
    if status == 413:
        return _K.DATA, _C.VALIDATION
    if status == 408 or status >= 500:
        return _K.TRANSIENT, _C.CONNECTION
    if status == 405:
        return _K.CONFIG, _C.VALIDATION
    return _K.DATA, _C.UNKNOWN


def unexpected_shape(what: str, response: httpx.Response, detail: str) -> ConnectorError:
    return ConnectorError(
        f"NetSuite returned an unexpected {what} for {response.request.method} {response.request.url.path}: "
        f"{detail}. This is usually a proxy or an outage; retry later.",
        kind=_K.TRANSIENT,
        category=_C.CONNECTION,
        system=SYSTEM,
        status=response.status_code,
        vendor_code="unexpected_response",
    )
