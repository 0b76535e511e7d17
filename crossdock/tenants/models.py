"""The tenant tree in one table: partner rows, merchant rows and environment rows."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crossdock.core.clock import utcnow
from crossdock.core.db import Base, JSONType, UTCDateTime
from crossdock.core.tenancy import TenantOwned


class TenantKind(StrEnum):
    PARTNER = "partner"
    MERCHANT = "merchant"
    ENVIRONMENT = "environment"


class Tenant(TenantOwned, Base):
    """A partner (partner_id = id), a merchant (merchant_id = id) or an environment of a merchant."""

    __tablename__ = "tenants"
    __table_args__ = (UniqueConstraint("parent_id", "slug", name="uq_tenants_parent_slug"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16), default="active")
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
