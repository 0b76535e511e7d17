"""Request and response bodies for connections. Secrets are write-only: never returned."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from crossdock.core.schemas import Input, Output


class ConnectionCreate(Input):
    merchant_id: str
    system: str = Field(examples=["shopify"])
    name: str = Field(min_length=1, max_length=120, pattern=r"^[a-z0-9][a-z0-9._-]*$", examples=["aurora-shop"])
    environment: Literal["sandbox", "production"] = "production"
    config: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, Any] = Field(default_factory=dict, description="Encrypted at rest; never returned.")


class ConnectionUpdate(Input):
    config: dict[str, Any] | None = None
    secrets: dict[str, Any] | None = Field(None, description="Replaces the stored secrets when given.")
    status: Literal["active", "disabled"] | None = None


class ConnectionOut(Output):
    id: str
    partner_id: str | None
    merchant_id: str | None
    environment: str
    system: str
    name: str
    config: dict[str, Any]
    secret_fields: list[str] = Field(description="Names of the stored secrets (values are never returned).")
    status: str
    last_tested_at: datetime | None
    last_test: dict[str, Any] | None
    created_at: datetime


class ConnectionTestOut(Output):
    ok: bool
    summary: str
    checks: list[dict[str, Any]]
