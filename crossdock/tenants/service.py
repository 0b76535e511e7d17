"""Business operations on the tenant tree. Each change writes its audit event in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.core.context import Actor
from crossdock.core.errors import Conflict, Forbidden, NotFound
from crossdock.core.ids import new_id
from crossdock.core.pagination import paginate
from crossdock.core.repository import get_visible, slugify, snapshot
from crossdock.governance.audit import record
from crossdock.tenants.models import Tenant, TenantKind
from crossdock.tenants.schemas import MerchantCreate, MerchantUpdate, PartnerCreate, PartnerUpdate

ENVIRONMENTS = ("sandbox", "production")
_FIELDS = ("name", "slug", "status", "settings")


async def _flush_unique(session: AsyncSession, what: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A {what} with that slug already exists; choose another slug.") from exc


async def get_partner(session: AsyncSession, partner_id: str) -> Tenant:
    row = await get_visible(session, Tenant, partner_id, "partner")
    if row.kind != TenantKind.PARTNER:
        raise NotFound("partner", partner_id)
    return row


async def get_merchant(session: AsyncSession, merchant_id: str) -> Tenant:
    row = await get_visible(session, Tenant, merchant_id, "merchant")
    if row.kind != TenantKind.MERCHANT:
        raise NotFound("merchant", merchant_id)
    return row


async def create_partner(session: AsyncSession, actor: Actor, data: PartnerCreate) -> Tenant:
    if not actor.scope.platform:
        raise Forbidden("Only platform administrators can create partners.")
    pid = new_id("ptn")
    partner = Tenant(
        id=pid,
        kind=TenantKind.PARTNER,
        parent_id=None,
        partner_id=pid,
        merchant_id=None,
        name=data.name,
        slug=data.slug or slugify(data.name),
        settings=data.settings,
    )
    session.add(partner)
    await _flush_unique(session, "partner")
    record(
        session,
        actor,
        "tenants.partner.create",
        target_type="partner",
        target_id=pid,
        partner_id=pid,
        merchant_id=None,
        after=snapshot(partner, _FIELDS),
    )
    return partner


async def update_partner(session: AsyncSession, actor: Actor, partner_id: str, data: PartnerUpdate) -> Tenant:
    partner = await get_partner(session, partner_id)
    return await _update(session, actor, partner, data, "tenants.partner.update")


async def _update(
    session: AsyncSession, actor: Actor, row: Tenant, data: PartnerUpdate | MerchantUpdate, action: str
) -> Tenant:
    before = snapshot(row, _FIELDS)
    for key, value in data.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(row, key, value)
    await session.flush()
    record(
        session,
        actor,
        action,
        target_type=row.kind,
        target_id=row.id,
        partner_id=row.partner_id,
        merchant_id=row.merchant_id,
        before=before,
        after=snapshot(row, _FIELDS),
    )
    return row


async def list_tenants(
    session: AsyncSession,
    kind: TenantKind,
    *,
    limit: int,
    cursor: str | None,
    partner_id: str | None = None,
    status: str | None = None,
    name: str | None = None,
) -> tuple[Sequence[Tenant], str | None]:
    stmt = select(Tenant).where(Tenant.kind == kind)
    if partner_id:
        stmt = stmt.where(Tenant.partner_id == partner_id)
    if status:
        stmt = stmt.where(Tenant.status == status)
    if name:
        stmt = stmt.where(Tenant.name.ilike(f"%{name}%"))
    return await paginate(session, stmt, Tenant.id, limit=limit, cursor=cursor)


async def create_merchant(session: AsyncSession, actor: Actor, data: MerchantCreate) -> Tenant:
    # The partner must be visible *as a partner*: merchant-level grants never see their partner row.
    partner = await get_partner(session, data.partner_id)
    mid = new_id("mer")
    merchant = Tenant(
        id=mid,
        kind=TenantKind.MERCHANT,
        parent_id=partner.id,
        partner_id=partner.id,
        merchant_id=mid,
        name=data.name,
        slug=data.slug or slugify(data.name),
        settings=data.settings,
    )
    session.add(merchant)
    await _flush_unique(session, "merchant")
    for env in ENVIRONMENTS:
        session.add(
            Tenant(
                id=new_id("env"),
                kind=TenantKind.ENVIRONMENT,
                parent_id=mid,
                partner_id=partner.id,
                merchant_id=mid,
                name=env,
                slug=env,
                settings={},
            )
        )
    await session.flush()
    record(
        session,
        actor,
        "tenants.merchant.create",
        target_type="merchant",
        target_id=mid,
        partner_id=partner.id,
        merchant_id=mid,
        after=snapshot(merchant, _FIELDS),
    )
    return merchant


async def update_merchant(session: AsyncSession, actor: Actor, merchant_id: str, data: MerchantUpdate) -> Tenant:
    merchant = await get_merchant(session, merchant_id)
    return await _update(session, actor, merchant, data, "tenants.merchant.update")


async def list_environments(session: AsyncSession, merchant_id: str) -> Sequence[Tenant]:
    await get_merchant(session, merchant_id)
    stmt = select(Tenant).where(Tenant.kind == TenantKind.ENVIRONMENT, Tenant.parent_id == merchant_id)
    return (await session.scalars(stmt.order_by(Tenant.slug))).all()
