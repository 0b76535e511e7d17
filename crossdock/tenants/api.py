"""HTTP routes for partners, merchants and environments. Thin: validate, authorize, call the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from crossdock.core.context import Actor
from crossdock.core.pagination import Page
from crossdock.identity.permissions import Permission as P
from crossdock.tenants import service
from crossdock.tenants.models import TenantKind
from crossdock.tenants.schemas import (
    EnvironmentOut,
    MerchantCreate,
    MerchantOut,
    MerchantUpdate,
    PartnerCreate,
    PartnerOut,
    PartnerUpdate,
)
from crossdock.web.deps import ContainerDep, require
from crossdock.web.params import Cursor, Limit, to_page

router = APIRouter(prefix="/v1", tags=["tenants"])

ReadPartners = Annotated[Actor, Depends(require(P.PARTNERS_READ))]
ManagePartners = Annotated[Actor, Depends(require(P.PARTNERS_MANAGE))]
ReadMerchants = Annotated[Actor, Depends(require(P.MERCHANTS_READ))]
ManageMerchants = Annotated[Actor, Depends(require(P.MERCHANTS_MANAGE))]


@router.get("/partners", response_model=Page[PartnerOut])
async def list_partners(
    c: ContainerDep,
    actor: ReadPartners,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: str | None = None,
    name: str | None = None,
) -> Page[PartnerOut]:
    async with c.db.session(actor.scope) as s:
        rows, nxt = await service.list_tenants(
            s, TenantKind.PARTNER, limit=limit, cursor=cursor, status=status, name=name
        )
        return to_page(PartnerOut, rows, nxt)


@router.post("/partners", response_model=PartnerOut, status_code=201)
async def create_partner(body: PartnerCreate, c: ContainerDep, actor: ManagePartners) -> PartnerOut:
    async with c.db.session(actor.scope) as s:
        return PartnerOut.model_validate(await service.create_partner(s, actor, body))


@router.get("/partners/{partner_id}", response_model=PartnerOut)
async def get_partner(partner_id: str, c: ContainerDep, actor: ReadPartners) -> PartnerOut:
    async with c.db.session(actor.scope) as s:
        return PartnerOut.model_validate(await service.get_partner(s, partner_id))


@router.patch("/partners/{partner_id}", response_model=PartnerOut)
async def update_partner(partner_id: str, body: PartnerUpdate, c: ContainerDep, actor: ManagePartners) -> PartnerOut:
    async with c.db.session(actor.scope) as s:
        return PartnerOut.model_validate(await service.update_partner(s, actor, partner_id, body))


@router.delete("/partners/{partner_id}", response_model=PartnerOut, summary="Archive a partner")
async def archive_partner(partner_id: str, c: ContainerDep, actor: ManagePartners) -> PartnerOut:
    async with c.db.session(actor.scope) as s:
        return PartnerOut.model_validate(
            await service.update_partner(s, actor, partner_id, PartnerUpdate(status="archived"))
        )


@router.get("/merchants", response_model=Page[MerchantOut])
async def list_merchants(
    c: ContainerDep,
    actor: ReadMerchants,
    limit: Limit = 50,
    cursor: Cursor = None,
    partner_id: str | None = None,
    status: str | None = None,
    name: str | None = None,
) -> Page[MerchantOut]:
    async with c.db.session(actor.scope) as s:
        rows, nxt = await service.list_tenants(
            s, TenantKind.MERCHANT, limit=limit, cursor=cursor, partner_id=partner_id, status=status, name=name
        )
        return to_page(MerchantOut, rows, nxt)


@router.post("/merchants", response_model=MerchantOut, status_code=201)
async def create_merchant(body: MerchantCreate, c: ContainerDep, actor: ManageMerchants) -> MerchantOut:
    async with c.db.session(actor.scope) as s:
        return MerchantOut.model_validate(await service.create_merchant(s, actor, body))


@router.get("/merchants/{merchant_id}", response_model=MerchantOut)
async def get_merchant(merchant_id: str, c: ContainerDep, actor: ReadMerchants) -> MerchantOut:
    async with c.db.session(actor.scope) as s:
        return MerchantOut.model_validate(await service.get_merchant(s, merchant_id))


@router.patch("/merchants/{merchant_id}", response_model=MerchantOut)
async def update_merchant(
    merchant_id: str, body: MerchantUpdate, c: ContainerDep, actor: ManageMerchants
) -> MerchantOut:
    async with c.db.session(actor.scope) as s:
        return MerchantOut.model_validate(await service.update_merchant(s, actor, merchant_id, body))


@router.delete("/merchants/{merchant_id}", response_model=MerchantOut, summary="Archive a merchant")
async def archive_merchant(merchant_id: str, c: ContainerDep, actor: ManageMerchants) -> MerchantOut:
    async with c.db.session(actor.scope) as s:
        return MerchantOut.model_validate(
            await service.update_merchant(s, actor, merchant_id, MerchantUpdate(status="archived"))
        )


@router.get("/merchants/{merchant_id}/environments", response_model=list[EnvironmentOut])
async def list_environments(merchant_id: str, c: ContainerDep, actor: ReadMerchants) -> list[EnvironmentOut]:
    async with c.db.session(actor.scope) as s:
        return [EnvironmentOut.model_validate(e) for e in await service.list_environments(s, merchant_id)]
