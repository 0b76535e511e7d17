"""One error base with stable codes; the API and CLI render it the same way everywhere."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable, documented error codes. Never rename one; add new ones."""

    BAD_REQUEST = "bad_request"
    VALIDATION = "validation_error"
    MALFORMED_JSON = "malformed_json"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNAUTHENTICATED = "unauthenticated"
    TOKEN_EXPIRED = "token_expired"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    STALE = "stale_write"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INVALID_SIGNATURE = "invalid_signature"
    INVALID_FLOW = "invalid_flow"
    INVALID_STATE = "invalid_state"
    CONNECTOR = "connector_error"
    CONFIGURATION = "configuration_error"
    INTERNAL = "internal_error"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.VALIDATION: 422,
    ErrorCode.MALFORMED_JSON: 400,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.INVALID_SIGNATURE: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.STALE: 409,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INVALID_FLOW: 422,
    ErrorCode.CONNECTOR: 502,
    ErrorCode.CONFIGURATION: 500,
    ErrorCode.INTERNAL: 500,
}


class CrossdockError(Exception):
    """Base of every error Crossdock raises on purpose.

    `message` says what went wrong and what to do about it; `details` is structured context
    (never secrets) that the API returns verbatim.
    """

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, code: ErrorCode | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details or {}

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": str(self.code), "message": self.message, "details": self.details}}


class NotFound(CrossdockError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what} {ident!r} was not found.", details={"type": what, "id": ident})


class Conflict(CrossdockError):
    code = ErrorCode.CONFLICT


class Forbidden(CrossdockError):
    code = ErrorCode.FORBIDDEN


class Unauthenticated(CrossdockError):
    code = ErrorCode.UNAUTHENTICATED


class ValidationFailed(CrossdockError):
    code = ErrorCode.VALIDATION


class InvalidState(CrossdockError):
    code = ErrorCode.INVALID_STATE
