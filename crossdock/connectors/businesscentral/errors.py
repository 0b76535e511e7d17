"""Classify Business Central (and Entra ID token endpoint) error responses into `ConnectorError`s.

BC error codes are documented by prefix: `BadRequest_*` (fix the request), `Authentication_*` /
`Authorization_*` (credentials), `Internal_*` (retry or fix data), `Application_*` (fix the data).
The taxonomy category comes from the code and, for `Application_DialogException`, from the message.
"""

from __future__ import annotations

from typing import Any

import httpx

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.transport import float_header, vendor_rejection

SYSTEM = "businesscentral"

_K = FailureKind
_C = FailureCategory
_BY_CODE: dict[str, tuple[FailureKind, FailureCategory]] = {
    "Request_EntityChanged": (_K.TRANSIENT, _C.STALE_WRITE),
    "BadRequest_InvalidToken": (_K.CONFIG, _C.VALIDATION),
    "Internal_EntityWithSameKeyExists": (_K.DATA, _C.DUPLICATE),
    "Application_StringExceededLength": (_K.DATA, _C.VALIDATION),
    "Application_FieldValidationException": (_K.DATA, _C.VALIDATION),
    "Application_EvaluateException": (_K.DATA, _C.VALIDATION),
    "Application_InvalidGUID": (_K.DATA, _C.VALIDATION),
    "BadRequest_RequiredParamNotProvided": (_K.DATA, _C.VALIDATION),
    "BadRequest_MethodNotAllowed": (_K.CONFIG, _C.VALIDATION),
    "BadRequest_MethodNotImplemented": (_K.CONFIG, _C.VALIDATION),
    "BadRequest_ResourceNotFound": (_K.CONFIG, _C.NOT_FOUND),
    "Internal_CompanyNotFound": (_K.CONFIG, _C.NOT_FOUND),
    "Internal_TenantUnavailable": (_K.TRANSIENT, _C.CONNECTION),
    "Internal_ServerError": (_K.TRANSIENT, _C.CONNECTION),
    "Application_TooManyRequests": (_K.TRANSIENT, _C.RATE_LIMIT),
}


def classify_response(response: httpx.Response, body: Any) -> ConnectorError:
    """A classified error for a BC data API response with status ≥ 400."""
    status = response.status_code
    error = body.get("error") if isinstance(body, dict) else None
    code = str(error.get("code", "")) if isinstance(error, dict) else ""
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    if not message:
        message = response.text[:300] or response.reason_phrase
    kind, category = _classify(status, code, message)
    return vendor_rejection("Business Central", SYSTEM, response, code, message, kind, category)


def _classify(status: int, code: str, message: str) -> tuple[FailureKind, FailureCategory]:
    text = message.lower()
    if status == 429:
        return _K.TRANSIENT, _C.RATE_LIMIT
    if status in (401, 403) or code.startswith(("Authentication_", "Authorization_")):
        return _K.AUTH, _C.AUTH
    if code in _BY_CODE:
        return _BY_CODE[code]
    if code == "Application_DialogException":
        if "insufficient quantity" in text:
            return _K.DATA, _C.INSUFFICIENT_INVENTORY
        if "credit limit" in text or " is blocked" in text:
            return _K.DATA, _C.CREDIT_HOLD
        if "customernumber or a customerid" in text:
            return _K.DATA, _C.BAD_CUSTOMER
        return _K.DATA, _C.VALIDATION
    if code in ("Internal_RecordNotFound", "Internal_InvalidTableRelation"):
        if "the item does not exist" in text:
            return _K.DATA, _C.SKU_NOT_FOUND
        if "the customer does not exist" in text:
            return _K.DATA, _C.BAD_CUSTOMER
        return _K.DATA, _C.MAPPING_GAP
    if status == 404:
        return _K.DATA, _C.NOT_FOUND
    if status == 413:
        return _K.DATA, _C.VALIDATION
    if status == 408 or status >= 500 or code.startswith("Internal_"):
        return _K.TRANSIENT, _C.CONNECTION
    if code.startswith("BadRequest"):
        # A value BC cannot convert comes from the merchant's data; anything else is a malformed request.
        return (_K.DATA, _C.VALIDATION) if "cannot convert" in text else (_K.CONFIG, _C.VALIDATION)
    if code.startswith("Application_") or status == 400:
        return _K.DATA, _C.VALIDATION
    return _K.DATA, _C.UNKNOWN


def classify_token_error(response: httpx.Response, body: Any) -> ConnectorError:
    """A classified error for the OAuth2 token endpoint (`{"error","error_description"}` bodies)."""
    status = response.status_code
    error = str(body.get("error", "")) if isinstance(body, dict) else ""
    description = str(body.get("error_description", "")) if isinstance(body, dict) else response.text[:300]
    if status == 429 or status >= 500:
        kind, category = _K.TRANSIENT, (_C.RATE_LIMIT if status == 429 else _C.CONNECTION)
    elif error in ("invalid_client", "unauthorized_client", "invalid_grant", "access_denied") or status == 401:
        kind, category = _K.AUTH, _C.AUTH
    else:
        kind, category = _K.CONFIG, _C.AUTH
    return ConnectorError(
        f"Could not get a Business Central access token (HTTP {status} {error}): {description}. "
        "Check the app registration's client id, secret and API permissions.",
        kind=kind,
        category=category,
        system=SYSTEM,
        status=status,
        retry_after=float_header(response, "Retry-After"),
        vendor_code=error or None,
    )


def unexpected_shape(what: str, response: httpx.Response, detail: str) -> ConnectorError:
    """The response parsed but lacks what the contract promises (a missing `value`, `id`, token...)."""
    return ConnectorError(
        f"Business Central returned an unexpected {what} for {response.request.method} "
        f"{response.request.url.path}: {detail}. This is usually a proxy or an outage; retry later.",
        kind=_K.TRANSIENT,
        category=_C.CONNECTION,
        system=SYSTEM,
        status=response.status_code,
        vendor_code="unexpected_response",
    )
