"""Principals (users, service accounts), their API tokens and their scoped role bindings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crossdock.core.clock import utcnow
from crossdock.core.db import Base, UTCDateTime
from crossdock.core.tenancy import TenantOwned


class User(TenantOwned, Base):
    """A person. Its home tenant is its path keys (both NULL for platform staff). No seats."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServiceAccount(TenantOwned, Base):
    """A non-human principal for scripts and integrations."""

    __tablename__ = "service_accounts"
    __table_args__ = (UniqueConstraint("partner_id", "merchant_id", "name", name="uq_service_accounts_home_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(TenantOwned, Base):
    """A bearer token: shown once, stored only as a SHA-256 hash, revocable, expiring."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    principal_type: Mapped[str] = mapped_column(String(20))
    principal_id: Mapped[str] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RoleBinding(TenantOwned, Base):
    """(principal, role, scope). The path keys of the row are the scope the role applies to."""

    __tablename__ = "role_bindings"
    __table_args__ = (
        UniqueConstraint("principal_id", "role", "partner_id", "merchant_id", name="uq_role_bindings_grant"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    principal_type: Mapped[str] = mapped_column(String(20))
    principal_id: Mapped[str] = mapped_column(String(40), index=True)
    role: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
