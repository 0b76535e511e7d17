"""Template instances: create (validate, render, publish), change, list, and upgrade a fleet.

Every change renders the template into an engine definition, stores it as a new version of the
instance's engine flow and publishes it, and writes its audit event, all in the caller's
transaction. Runs pin the engine version they started on, so an upgrade never touches a run in
flight; it finishes on its old version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.connections import service as connections
from crossdock.core.context import Actor
from crossdock.core.errors import Conflict, NotFound
from crossdock.core.ids import new_id
from crossdock.core.pagination import paginate
from crossdock.core.repository import get_visible
from crossdock.engine import service as engine_service
from crossdock.engine.core import Engine
from crossdock.engine.schemas import FlowCreate
from crossdock.flows.catalog import (
    Template,
    TemplateError,
    get_template,
    merged_params,
    render,
    validate_bindings,
    validate_overrides,
)
from crossdock.flows.diff import definition_diff, param_diff
from crossdock.flows.models import FlowInstance, InstanceStatus
from crossdock.flows.schemas import InstanceCreate, InstanceUpdate, UpgradeItem, UpgradeReport
from crossdock.governance.audit import record
from crossdock.tenants.service import get_merchant

_AUDITED = ("template", "template_version", "overrides", "bindings", "engine_version", "status")


def _snapshot(inst: FlowInstance) -> dict[str, Any]:
    return {f: getattr(inst, f) for f in _AUDITED}


def _audit(session: AsyncSession, actor: Actor, inst: FlowInstance, verb: str, before: dict[str, Any] | None) -> None:
    record(
        session,
        actor,
        f"flows.instance.{verb}",
        target_type="flow_instance",
        target_id=inst.id,
        partner_id=inst.partner_id,
        merchant_id=inst.merchant_id,
        before=before,
        after=_snapshot(inst),
    )


async def check_connections(
    session: AsyncSession, template: Template, overrides: dict[str, Any], bindings: dict[str, str], merchant_id: str
) -> None:
    """Each bound connection exists in the merchant and is of the role's system (the `erp` parameter
    decides the ERP's system)."""
    validate_bindings(template, bindings)
    params = merged_params(template, overrides)
    errors = []
    for binding in template.bindings:
        conn_id = bindings.get(binding.role)
        if not conn_id:
            continue
        path = f"bindings.{binding.role}"
        try:
            conn = await connections.get_connection(session, conn_id)
        except NotFound:
            errors.append({"path": path, "problem": f"connection {conn_id!r} was not found"})
            continue
        allowed = set(binding.system.split("|"))
        if binding.role == "erp" and "erp" in params:
            allowed = {str(params["erp"])}
        if conn.merchant_id != merchant_id:
            errors.append({"path": path, "problem": f"connection {conn_id!r} belongs to another merchant"})
        elif conn.system not in allowed:
            errors.append(
                {"path": path, "problem": f"is a {conn.system} connection; expected {' or '.join(sorted(allowed))}"}
            )
    if errors:
        summary = "; ".join(f"{e['path']}: {e['problem']}" for e in errors)
        raise TemplateError(f"The connections of {template.name} v{template.version} are not valid: {summary}.", errors)


async def create_instance(session: AsyncSession, actor: Actor, engine: Engine, data: InstanceCreate) -> FlowInstance:
    """Validate the overrides and bindings, render, create and publish the engine flow."""
    template = get_template(data.template, data.version)
    merchant = await get_merchant(session, data.merchant_id)
    overrides = validate_overrides(template, data.overrides)
    await check_connections(session, template, overrides, data.bindings, merchant.id)
    definition = render(template, overrides, data.bindings)
    key = data.key or template.name
    body = FlowCreate(
        merchant_id=merchant.id,
        key=key,
        name=f"{template.title}",
        description=f"From template {template.name} v{template.version}.",
        definition=definition,
    )
    flow, version = await engine_service.create_flow(session, actor, engine, body)
    await engine_service.publish_version(session, actor, engine, flow.id, version.number)
    inst = FlowInstance(
        id=new_id("fli"),
        key=key,
        template=template.name,
        template_version=template.version,
        overrides=overrides,
        bindings=dict(data.bindings),
        engine_flow_id=flow.id,
        engine_version=version.number,
        status=InstanceStatus.ACTIVE,
        created_by=actor.principal_id,
        partner_id=merchant.partner_id,
        merchant_id=merchant.id,
    )
    session.add(inst)
    try:
        await session.flush()
    except IntegrityError as exc:  # pragma: no cover - the engine flow key is unique first
        raise Conflict(f"The merchant already has a flow instance {key!r}.") from exc
    _audit(session, actor, inst, "create", None)
    await session.flush()
    return inst


async def get_instance(session: AsyncSession, instance_id: str) -> FlowInstance:
    return await get_visible(session, FlowInstance, instance_id, "flow instance")


async def list_instances(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    merchant_id: str | None = None,
    template: str | None = None,
) -> tuple[Sequence[FlowInstance], str | None]:
    stmt = select(FlowInstance)
    if merchant_id:
        stmt = stmt.where(FlowInstance.merchant_id == merchant_id)
    if template:
        stmt = stmt.where(FlowInstance.template == template)
    return await paginate(session, stmt, FlowInstance.id, limit=limit, cursor=cursor)


async def _publish(
    session: AsyncSession, actor: Actor, engine: Engine, inst: FlowInstance, definition: dict[str, Any]
) -> int:
    version = await engine_service.create_version(session, actor, engine, inst.engine_flow_id, definition)
    await engine_service.publish_version(session, actor, engine, inst.engine_flow_id, version.number)
    return version.number


async def update_instance(
    session: AsyncSession, actor: Actor, engine: Engine, instance_id: str, data: InstanceUpdate
) -> FlowInstance:
    """Replace overrides and/or bindings (re-render and publish a new engine version) or the status."""
    inst = await get_instance(session, instance_id)
    before = _snapshot(inst)
    if data.overrides is not None or data.bindings is not None:
        template = get_template(inst.template, inst.template_version)
        overrides = validate_overrides(template, inst.overrides if data.overrides is None else data.overrides)
        bindings = inst.bindings if data.bindings is None else dict(data.bindings)
        await check_connections(session, template, overrides, bindings, str(inst.merchant_id))
        inst.engine_version = await _publish(session, actor, engine, inst, render(template, overrides, bindings))
        inst.overrides, inst.bindings = overrides, bindings
    if data.status is not None:
        inst.status = data.status
    _audit(session, actor, inst, "update", before)
    await session.flush()
    return inst


async def upgrade(
    session: AsyncSession,
    actor: Actor,
    engine: Engine,
    template_name: str,
    to_version: int,
    *,
    merchant_ids: Sequence[str] | None = None,
    dry_run: bool = True,
    progress: Callable[[UpgradeItem], None] | None = None,
) -> UpgradeReport:
    """Per-instance diff to `to_version`; unless `dry_run`, render and publish it keeping the overrides
    the new version still knows (dropped ones are reported under `params.removed`)."""
    target = get_template(template_name, to_version)
    stmt = select(FlowInstance).where(FlowInstance.template == template_name)
    if merchant_ids:
        stmt = stmt.where(FlowInstance.merchant_id.in_(list(merchant_ids)))
    instances = (await session.scalars(stmt.order_by(FlowInstance.merchant_id, FlowInstance.key))).all()
    if merchant_ids:
        missing = sorted(set(merchant_ids) - {str(i.merchant_id) for i in instances})
        if missing:
            raise NotFound(f"instance of template {template_name!r} for merchant", ", ".join(missing))
    items = []
    for inst in instances:
        item = await _upgrade_one(session, actor, engine, inst, target, dry_run)
        items.append(item)
        if progress is not None:
            progress(item)
    return UpgradeReport(template=template_name, to_version=to_version, dry_run=dry_run, items=items)


async def _upgrade_one(
    session: AsyncSession, actor: Actor, engine: Engine, inst: FlowInstance, target: Template, dry_run: bool
) -> UpgradeItem:
    current = get_template(inst.template, inst.template_version)
    params = param_diff(current, target, inst.overrides)
    base = {
        "instance_id": inst.id,
        "merchant_id": inst.merchant_id,
        "key": inst.key,
        "from_version": inst.template_version,
        "to_version": target.version,
        "params": params,
    }
    published = await engine_service.get_version(session, inst.engine_flow_id, inst.engine_version)
    try:
        definition = render(target, params["kept"], inst.bindings)
        engine.validate(definition)
    except Exception as exc:
        message = getattr(exc, "message", str(exc))
        return UpgradeItem(**base, status="failed", definition={}, error=message)
    diff = definition_diff(published.definition, definition)
    if inst.template_version == target.version and definition == published.definition:
        return UpgradeItem(**base, status="up_to_date", definition=diff, engine_version=inst.engine_version)
    if dry_run:
        return UpgradeItem(**base, status="would_upgrade", definition=diff)
    before = _snapshot(inst)
    inst.engine_version = await _publish(session, actor, engine, inst, definition)
    inst.template_version = target.version
    inst.overrides = dict(params["kept"])
    _audit(session, actor, inst, "upgrade", before)
    await session.flush()
    return UpgradeItem(**base, status="upgraded", definition=diff, engine_version=inst.engine_version)
