"""Failure classification shared by every connector, so cases can route on it.

Every failure a connector raises is a `ConnectorError` with a `kind` (what to do: retry, fix the
data, fix the configuration, fix the credentials) and a `category` from the exception taxonomy in
`shared/reference/integration-apis.md` §6.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from crossdock.core.errors import CrossdockError, ErrorCode


class FailureKind(StrEnum):
    TRANSIENT = "transient"  # retry with backoff; resolves itself
    DATA = "data"  # fix the record or a mapping, then replay
    CONFIG = "config"  # fix the connection or flow configuration
    AUTH = "auth"  # fix credentials or permissions


class FailureCategory(StrEnum):
    SKU_NOT_FOUND = "sku_not_found"
    BAD_CUSTOMER = "bad_customer_reference"
    MAPPING_GAP = "mapping_gap"
    INSUFFICIENT_INVENTORY = "insufficient_inventory"
    CREDIT_HOLD = "credit_hold"
    DUPLICATE = "duplicate"
    RATE_LIMIT = "rate_limit"
    STALE_WRITE = "stale_write"
    VALIDATION = "validation"
    FULFILLMENT_STATE = "fulfillment_state"
    CONNECTION = "connection"
    AUTH = "auth"
    PRICE_MISMATCH = "price_mismatch"
    ADDRESS = "address_validation"
    DISCOUNT_ANOMALY = "discount_anomaly"
    NOT_FOUND = "not_found"
    UNKNOWN = "unknown"


class ConnectorError(CrossdockError):
    """A classified failure talking to an external system."""

    code = ErrorCode.CONNECTOR

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind,
        category: FailureCategory,
        system: str,
        status: int | None = None,
        retry_after: float | None = None,
        vendor_code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        merged = {
            "system": system,
            "kind": str(kind),
            "category": str(category),
            "status": status,
            "vendor_code": vendor_code,
            **(details or {}),
        }
        super().__init__(message, details=merged)
        self.kind = kind
        self.category = category
        self.system = system
        self.status = status
        self.retry_after = retry_after
        self.vendor_code = vendor_code

    @property
    def transient(self) -> bool:
        return self.kind is FailureKind.TRANSIENT
