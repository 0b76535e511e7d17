"""A connection row: plain config, encrypted secrets, and the last test's diagnosis."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crossdock.core.clock import utcnow
from crossdock.core.db import Base, JSONType, UTCDateTime
from crossdock.core.tenancy import TenantOwned


class Connection(TenantOwned, Base):
    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("merchant_id", "environment", "name", name="uq_connections_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    environment: Mapped[str] = mapped_column(String(20), default="production")
    system: Mapped[str] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(String(120))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    secrets_ciphertext: Mapped[str] = mapped_column(Text)
    secret_fields: Mapped[list[str]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")
    last_tested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_test: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
