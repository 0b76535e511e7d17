"""HTTP routes of flow templates, template instances and fleet upgrades (thin: one service call each)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from crossdock.core.context import Actor
from crossdock.core.pagination import Page
from crossdock.engine.core import engine_of
from crossdock.flows import service, views
from crossdock.flows.schemas import (
    InstanceCreate,
    InstanceOut,
    InstanceUpdate,
    TemplateOut,
    TemplateSummary,
    UpgradeReport,
    UpgradeRequest,
)
from crossdock.identity.permissions import Permission as P
from crossdock.web.deps import ContainerDep, require
from crossdock.web.params import Cursor, Limit, to_page

router = APIRouter(prefix="/v1", tags=["templates"])

ReadFlows = Annotated[Actor, Depends(require(P.FLOWS_READ))]
ManageFlows = Annotated[Actor, Depends(require(P.FLOWS_MANAGE))]
PublishFlows = Annotated[Actor, Depends(require(P.FLOWS_PUBLISH))]


@router.get("/templates", response_model=list[TemplateSummary], summary="Flow templates with versions and params.")
async def list_templates(actor: ReadFlows) -> list[TemplateSummary]:
    return views.list_templates()


@router.get("/templates/{name}/{version}", response_model=TemplateOut, summary="One template version.")
async def get_template(name: str, version: int, actor: ReadFlows) -> TemplateOut:
    return views.show_template(name, version)


@router.post("/templates/{name}/upgrade", response_model=UpgradeReport, summary="Diff (dry run) or upgrade a fleet.")
async def upgrade_template(name: str, body: UpgradeRequest, c: ContainerDep, actor: PublishFlows) -> UpgradeReport:
    async with c.db.session(actor.scope) as s:
        return await service.upgrade(
            s, actor, engine_of(c), name, body.to_version, merchant_ids=body.merchant_ids, dry_run=body.dry_run
        )


@router.post("/flow-instances", response_model=InstanceOut, status_code=201, summary="Instantiate a template.")
async def create_instance(body: InstanceCreate, c: ContainerDep, actor: PublishFlows) -> InstanceOut:
    async with c.db.session(actor.scope) as s:
        return InstanceOut.model_validate(await service.create_instance(s, actor, engine_of(c), body))


@router.get("/flow-instances", response_model=Page[InstanceOut])
async def list_instances(
    c: ContainerDep,
    actor: ReadFlows,
    limit: Limit = 50,
    cursor: Cursor = None,
    merchant_id: str | None = None,
    template: str | None = None,
) -> Page[InstanceOut]:
    async with c.db.session(actor.scope) as s:
        rows, nxt = await service.list_instances(
            s, limit=limit, cursor=cursor, merchant_id=merchant_id, template=template
        )
        return to_page(InstanceOut, rows, nxt)


@router.get("/flow-instances/{instance_id}", response_model=InstanceOut)
async def get_instance(instance_id: str, c: ContainerDep, actor: ReadFlows) -> InstanceOut:
    async with c.db.session(actor.scope) as s:
        return InstanceOut.model_validate(await service.get_instance(s, instance_id))


@router.patch(
    "/flow-instances/{instance_id}", response_model=InstanceOut, summary="Change overrides, bindings, status."
)
async def update_instance(instance_id: str, body: InstanceUpdate, c: ContainerDep, actor: PublishFlows) -> InstanceOut:
    async with c.db.session(actor.scope) as s:
        return InstanceOut.model_validate(await service.update_instance(s, actor, engine_of(c), instance_id, body))
