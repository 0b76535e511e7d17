"""Request and response bodies for users, service accounts, tokens and role bindings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from crossdock.core.schemas import Input, Output

PrincipalType = Literal["user", "service_account"]


class Home(Input):
    """Where a principal lives: a merchant, a partner, or (both unset) the platform."""

    partner_id: str | None = None
    merchant_id: str | None = None


class UserCreate(Home):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$", examples=["ops@aurora.example"])
    name: str = Field(min_length=1, max_length=200)


class UserUpdate(Input):
    name: str | None = Field(None, min_length=1, max_length=200)
    status: Literal["active", "disabled"] | None = None


class UserOut(Output):
    id: str
    email: str
    name: str
    status: str
    partner_id: str | None
    merchant_id: str | None
    created_at: datetime


class ServiceAccountCreate(Home):
    name: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
    description: str = Field("", max_length=500)


class ServiceAccountUpdate(Input):
    description: str | None = Field(None, max_length=500)
    status: Literal["active", "disabled"] | None = None


class ServiceAccountOut(Output):
    id: str
    name: str
    description: str
    status: str
    partner_id: str | None
    merchant_id: str | None
    created_at: datetime


class TokenCreate(Input):
    principal_id: str
    name: str = Field("api", min_length=1, max_length=120)
    expires_in_days: int | None = Field(
        None, ge=1, le=3650, description="Lifetime in days; defaults to the installation's token TTL."
    )


class TokenOut(Output):
    id: str
    principal_type: str
    principal_id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret. Shown only now; store it safely.")


class RoleBindingCreate(Input):
    principal_id: str
    role: str = Field(examples=["merchant_admin"])
    partner_id: str | None = Field(None, description="Scope of a partner-level role.")
    merchant_id: str | None = Field(None, description="Scope of a merchant-level role.")


class RoleBindingOut(Output):
    id: str
    principal_type: str
    principal_id: str
    role: str
    partner_id: str | None
    merchant_id: str | None
    created_at: datetime


class RoleOut(Output):
    name: str
    level: str
    description: str
    permissions: list[str]


class MeOut(Output):
    principal_type: str
    principal_id: str
    grants: list[dict[str, str | None]]
