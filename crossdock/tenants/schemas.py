"""Request and response bodies for partners, merchants and environments."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from crossdock.core.schemas import Input, Output

Status = Literal["active", "suspended", "archived"]


class PartnerCreate(Input):
    name: str = Field(min_length=1, max_length=200, examples=["Northwind Integration Partners"])
    slug: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,79}$", description="URL-safe name; derived if unset.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Branding and defaults (logo, colours, ...).")


class PartnerUpdate(Input):
    name: str | None = Field(None, min_length=1, max_length=200)
    status: Status | None = None
    settings: dict[str, Any] | None = None


class PartnerOut(Output):
    id: str
    name: str
    slug: str
    status: str
    settings: dict[str, Any]
    created_at: datetime


class MerchantCreate(Input):
    partner_id: str
    name: str = Field(min_length=1, max_length=200, examples=["Aurora Outfitters"])
    slug: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,79}$")
    settings: dict[str, Any] = Field(default_factory=dict, description="Per-merchant configuration.")


class MerchantUpdate(Input):
    name: str | None = Field(None, min_length=1, max_length=200)
    status: Status | None = None
    settings: dict[str, Any] | None = None


class MerchantOut(Output):
    id: str
    partner_id: str | None
    name: str
    slug: str
    status: str
    settings: dict[str, Any]
    created_at: datetime


class EnvironmentOut(Output):
    id: str
    partner_id: str | None
    merchant_id: str | None
    name: str
    slug: str
    status: str
