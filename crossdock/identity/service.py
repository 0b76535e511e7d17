"""Business operations on principals, tokens and role bindings, each audited in its transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.core.clock import utcnow
from crossdock.core.context import Actor
from crossdock.core.errors import Conflict, Forbidden, ValidationFailed
from crossdock.core.ids import new_id
from crossdock.core.pagination import paginate
from crossdock.core.repository import get_visible, snapshot
from crossdock.governance.audit import record
from crossdock.identity.models import ApiToken, RoleBinding, ServiceAccount, User
from crossdock.identity.permissions import ROLES, Level
from crossdock.identity.schemas import (
    Home,
    RoleBindingCreate,
    ServiceAccountCreate,
    ServiceAccountUpdate,
    TokenCreate,
    UserCreate,
    UserUpdate,
)
from crossdock.identity.tokens import generate_token, hash_token
from crossdock.tenants import service as tenants

Principal = User | ServiceAccount


async def resolve_home(session: AsyncSession, actor: Actor, home: Home) -> tuple[str | None, str | None]:
    """The path keys of a principal's home tenant, which must be visible to the actor."""
    if home.merchant_id:
        merchant = await tenants.get_merchant(session, home.merchant_id)
        if home.partner_id and home.partner_id != merchant.partner_id:
            raise ValidationFailed("merchant_id does not belong to partner_id.")
        return merchant.partner_id, merchant.id
    if home.partner_id:
        partner = await tenants.get_partner(session, home.partner_id)
        return partner.id, None
    if not actor.scope.platform:
        raise Forbidden("Only platform administrators can create platform-level principals; set a merchant_id.")
    return None, None


async def get_principal(session: AsyncSession, principal_id: str) -> Principal:
    model: type[Principal] = User if principal_id.startswith("usr_") else ServiceAccount
    return await get_visible(session, model, principal_id, "principal")


def principal_type(p: Principal) -> str:
    return "user" if isinstance(p, User) else "service_account"


async def create_user(session: AsyncSession, actor: Actor, data: UserCreate) -> User:
    partner_id, merchant_id = await resolve_home(session, actor, data)
    user = User(
        id=new_id("usr"), email=data.email.lower(), name=data.name, partner_id=partner_id, merchant_id=merchant_id
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A user with email {data.email!r} already exists.") from exc
    record(
        session,
        actor,
        "identity.user.create",
        target_type="user",
        target_id=user.id,
        partner_id=partner_id,
        merchant_id=merchant_id,
        after=snapshot(user, ("email", "name", "status")),
    )
    return user


async def update_principal(
    session: AsyncSession, actor: Actor, principal_id: str, data: UserUpdate | ServiceAccountUpdate
) -> Principal:
    principal = await get_principal(session, principal_id)
    fields = tuple(type(data).model_fields)
    before = snapshot(principal, fields)
    for key, value in data.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(principal, key, value)
    await session.flush()
    kind = principal_type(principal)
    record(
        session,
        actor,
        f"identity.{kind}.update",
        target_type=kind,
        target_id=principal.id,
        partner_id=principal.partner_id,
        merchant_id=principal.merchant_id,
        before=before,
        after=snapshot(principal, fields),
    )
    return principal


async def list_users(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    email: str | None = None,
    merchant_id: str | None = None,
    partner_id: str | None = None,
    status: str | None = None,
) -> tuple[Sequence[User], str | None]:
    stmt = select(User)
    if email:
        stmt = stmt.where(User.email == email.lower())
    if merchant_id:
        stmt = stmt.where(User.merchant_id == merchant_id)
    if partner_id:
        stmt = stmt.where(User.partner_id == partner_id)
    if status:
        stmt = stmt.where(User.status == status)
    return await paginate(session, stmt, User.id, limit=limit, cursor=cursor)


async def create_service_account(session: AsyncSession, actor: Actor, data: ServiceAccountCreate) -> ServiceAccount:
    partner_id, merchant_id = await resolve_home(session, actor, data)
    sa = ServiceAccount(
        id=new_id("sa"), name=data.name, description=data.description, partner_id=partner_id, merchant_id=merchant_id
    )
    session.add(sa)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A service account named {data.name!r} already exists here.") from exc
    record(
        session,
        actor,
        "identity.service_account.create",
        target_type="service_account",
        target_id=sa.id,
        partner_id=partner_id,
        merchant_id=merchant_id,
        after=snapshot(sa, ("name", "description", "status")),
    )
    return sa


async def list_service_accounts(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    merchant_id: str | None = None,
    partner_id: str | None = None,
    status: str | None = None,
) -> tuple[Sequence[ServiceAccount], str | None]:
    stmt = select(ServiceAccount)
    if merchant_id:
        stmt = stmt.where(ServiceAccount.merchant_id == merchant_id)
    if partner_id:
        stmt = stmt.where(ServiceAccount.partner_id == partner_id)
    if status:
        stmt = stmt.where(ServiceAccount.status == status)
    return await paginate(session, stmt, ServiceAccount.id, limit=limit, cursor=cursor)


async def create_token(
    session: AsyncSession, actor: Actor, data: TokenCreate, *, default_ttl_days: int
) -> tuple[ApiToken, str]:
    """Issue a token for a visible principal. Returns the row and the secret, which is never stored."""
    principal = await get_principal(session, data.principal_id)
    if principal.status != "active":
        raise Conflict("The principal is disabled; enable it before issuing tokens.")
    secret = generate_token()
    days = data.expires_in_days or default_ttl_days
    expires_at = utcnow() + timedelta(days=days)
    token = ApiToken(
        id=new_id("tok"),
        principal_type=principal_type(principal),
        principal_id=principal.id,
        name=data.name,
        prefix=secret[:12],
        token_hash=hash_token(secret),
        expires_at=utcnow() + timedelta(days=days),
        partner_id=principal.partner_id,
        merchant_id=principal.merchant_id,
    )
    session.add(token)
    await session.flush()
    record(
        session,
        actor,
        "identity.token.create",
        target_type="token",
        target_id=token.id,
        partner_id=token.partner_id,
        merchant_id=token.merchant_id,
        after={"principal_id": principal.id, "name": data.name, "expires_at": expires_at.isoformat()},
    )
    return token, secret


async def revoke_token(session: AsyncSession, actor: Actor, token_id: str) -> ApiToken:
    token = await get_visible(session, ApiToken, token_id, "token")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await session.flush()
        record(
            session,
            actor,
            "identity.token.revoke",
            target_type="token",
            target_id=token.id,
            partner_id=token.partner_id,
            merchant_id=token.merchant_id,
            after={"revoked": True},
        )
    return token


async def list_tokens(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    principal_id: str | None = None,
    active: bool | None = None,
) -> tuple[Sequence[ApiToken], str | None]:
    stmt = select(ApiToken)
    if principal_id:
        stmt = stmt.where(ApiToken.principal_id == principal_id)
    if active is True:
        stmt = stmt.where(ApiToken.revoked_at.is_(None), ApiToken.expires_at > utcnow())
    return await paginate(session, stmt, ApiToken.id, limit=limit, cursor=cursor)


async def create_role_binding(session: AsyncSession, actor: Actor, data: RoleBindingCreate) -> RoleBinding:
    role = ROLES.get(data.role)
    if role is None:
        raise ValidationFailed(f"Unknown role {data.role!r}; one of: {', '.join(ROLES)}.", details={"role": data.role})
    principal = await get_principal(session, data.principal_id)
    partner_id, merchant_id = await _binding_scope(session, actor, role.level, data)
    missing = {p.value for p in role.permissions if not actor.holds(p.value)}
    if missing:
        raise Forbidden(
            "You cannot grant a role with permissions you do not hold.", details={"missing": sorted(missing)}
        )
    binding = RoleBinding(
        id=new_id("rb"),
        principal_type=principal_type(principal),
        principal_id=principal.id,
        role=role.name,
        partner_id=partner_id,
        merchant_id=merchant_id,
    )
    session.add(binding)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("The principal already holds that role at that scope.") from exc
    record(
        session,
        actor,
        "identity.role_binding.create",
        target_type="role_binding",
        target_id=binding.id,
        partner_id=partner_id,
        merchant_id=merchant_id,
        after={"principal_id": principal.id, "role": role.name},
    )
    return binding


async def _binding_scope(
    session: AsyncSession, actor: Actor, level: Level, data: RoleBindingCreate
) -> tuple[str | None, str | None]:
    if level is Level.PLATFORM:
        if data.partner_id or data.merchant_id:
            raise ValidationFailed("platform_admin is granted at the platform; omit partner_id and merchant_id.")
        if not actor.scope.platform:
            raise Forbidden("Only platform administrators can grant platform roles.")
        return None, None
    if level is Level.PARTNER:
        if not data.partner_id or data.merchant_id:
            raise ValidationFailed("A partner role needs partner_id (and no merchant_id).")
        partner = await tenants.get_partner(session, data.partner_id)
        return partner.id, None
    if not data.merchant_id:
        raise ValidationFailed("A merchant role needs merchant_id.")
    merchant = await tenants.get_merchant(session, data.merchant_id)
    return merchant.partner_id, merchant.id


async def delete_role_binding(session: AsyncSession, actor: Actor, binding_id: str) -> None:
    binding = await get_visible(session, RoleBinding, binding_id, "role binding")
    if binding.principal_id == actor.principal_id and binding.role in ("platform_admin", "partner_admin"):
        raise Forbidden("You cannot remove your own administrator role; ask another administrator.")
    await session.delete(binding)
    await session.flush()
    record(
        session,
        actor,
        "identity.role_binding.delete",
        target_type="role_binding",
        target_id=binding.id,
        partner_id=binding.partner_id,
        merchant_id=binding.merchant_id,
        before={"principal_id": binding.principal_id, "role": binding.role},
    )


async def list_role_bindings(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    principal_id: str | None = None,
    role: str | None = None,
    merchant_id: str | None = None,
) -> tuple[Sequence[RoleBinding], str | None]:
    stmt = select(RoleBinding)
    if principal_id:
        stmt = stmt.where(RoleBinding.principal_id == principal_id)
    if role:
        stmt = stmt.where(RoleBinding.role == role)
    if merchant_id:
        stmt = stmt.where(RoleBinding.merchant_id == merchant_id)
    return await paginate(session, stmt, RoleBinding.id, limit=limit, cursor=cursor)
