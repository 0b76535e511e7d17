"""Authentication and authorization in one place: token → principal → bindings → scoped Actor."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.core.clock import utcnow
from crossdock.core.context import Actor
from crossdock.core.errors import CrossdockError, ErrorCode, Forbidden, Unauthenticated
from crossdock.core.tenancy import UNSCOPED, Scope
from crossdock.identity.models import ApiToken, RoleBinding, ServiceAccount, User
from crossdock.identity.permissions import ROLES, Level, Permission
from crossdock.identity.tokens import hash_token

_UNSCOPED = {UNSCOPED: True}


@dataclass(frozen=True)
class Grant:
    role: str
    scope: Scope


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and every role it holds, before picking a permission."""

    type: str
    id: str
    grants: tuple[Grant, ...] = field(default_factory=tuple)

    def scope_for(self, permission: Permission) -> Scope:
        scope = Scope.nothing()
        for grant in self.grants:
            if permission in ROLES[grant.role].permissions:
                scope = scope.union(grant.scope)
        return scope

    def actor(self, permission: Permission, request_id: str | None = None) -> Actor:
        """The actor for an operation needing `permission`, scoped to where the principal holds it."""
        scope = self.scope_for(permission)
        if scope.empty:
            raise Forbidden(
                f"Your token lacks the permission {permission.value!r}.", details={"permission": permission.value}
            )
        perms = frozenset(p.value for g in self.grants for p in ROLES[g.role].permissions)
        return Actor(self.type, self.id, scope, request_id, perms)


def grant_scope(binding: RoleBinding) -> Scope:
    level = ROLES[binding.role].level
    if level is Level.PLATFORM:
        return Scope.everything()
    if level is Level.PARTNER and binding.partner_id:
        return Scope.of_partner(binding.partner_id)
    if level is Level.MERCHANT and binding.merchant_id:
        return Scope.of_merchant(binding.merchant_id)
    return Scope.nothing()


async def authenticate(session: AsyncSession, bearer: str | None) -> Principal:
    """Resolve a bearer token to its principal, or raise a 401 saying exactly why."""
    if not bearer:
        raise Unauthenticated("Missing bearer token: send `Authorization: Bearer <token>`.")
    token = await session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hash_token(bearer)).execution_options(**_UNSCOPED)
    )
    now = utcnow()
    if token is None or token.revoked_at is not None:
        raise Unauthenticated("The token is not valid or has been revoked.")
    if token.expires_at is not None and token.expires_at <= now:
        raise CrossdockError(
            f"The token expired at {token.expires_at.isoformat()}; create a new one.", code=ErrorCode.TOKEN_EXPIRED
        )
    model: type[User] | type[ServiceAccount] = User if token.principal_type == "user" else ServiceAccount
    principal: User | ServiceAccount | None = await session.scalar(
        select(model).where(model.id == token.principal_id).execution_options(**_UNSCOPED)
    )
    if principal is None or principal.status != "active":
        raise Unauthenticated("The token's principal is disabled or no longer exists.")
    bindings = (
        await session.scalars(
            select(RoleBinding).where(RoleBinding.principal_id == token.principal_id).execution_options(**_UNSCOPED)
        )
    ).all()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=5):
        await session.execute(
            update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now).execution_options(**_UNSCOPED)
        )
    grants = tuple(Grant(b.role, grant_scope(b)) for b in bindings if b.role in ROLES)
    return Principal(token.principal_type, token.principal_id, grants)
