"""Control-plane operations on flows and runs. Each state change writes its audit event in the same
transaction; every read and write goes through the caller's scoped session.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from croniter import croniter
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.core.clock import utcnow
from crossdock.core.context import Actor
from crossdock.core.errors import Conflict, InvalidState, NotFound, ValidationFailed
from crossdock.core.ids import new_id
from crossdock.core.pagination import paginate
from crossdock.core.repository import get_visible
from crossdock.engine.core import Engine
from crossdock.engine.definitions import (
    CronTrigger,
    EventTrigger,
    FlowDefinition,
    InvalidFlow,
    PollTrigger,
    subflow_refs,
    validate_definition,
)
from crossdock.engine.models import (
    FINAL_STATUSES,
    Flow,
    FlowVersion,
    JournalEntry,
    Run,
    RunStatus,
    Trigger,
    VersionStatus,
    Wait,
    WaitStatus,
)
from crossdock.engine.schemas import FlowCreate, RunStart
from crossdock.governance.audit import record
from crossdock.tenants.service import get_merchant


def _checksum(definition: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _as_dict(engine: Engine, definition: dict[str, Any] | str) -> tuple[dict[str, Any], FlowDefinition]:
    from crossdock.engine.definitions import parse_text

    data = parse_text(definition) if isinstance(definition, str) else definition
    return data, engine.validate(data)


# -- flows and versions -----------------------------------------------------------------------


async def create_flow(
    session: AsyncSession, actor: Actor, engine: Engine, data: FlowCreate
) -> tuple[Flow, FlowVersion]:
    """A new flow with its first (draft) version."""
    merchant = await get_merchant(session, data.merchant_id)
    definition, _ = _as_dict(engine, data.definition)
    flow = Flow(
        id=new_id("flw"),
        key=data.key,
        name=data.name,
        description=data.description,
        partner_id=merchant.partner_id,
        merchant_id=merchant.id,
    )
    session.add(flow)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"The merchant already has a flow with key {data.key!r}; choose another key.") from exc
    version = _new_version(flow, 1, definition, actor)
    session.add(version)
    record(
        session,
        actor,
        "flows.flow.create",
        target_type="flow",
        target_id=flow.id,
        partner_id=flow.partner_id,
        merchant_id=flow.merchant_id,
        after={"key": flow.key, "name": flow.name, "version": 1},
    )
    await session.flush()
    return flow, version


def _new_version(flow: Flow, number: int, definition: dict[str, Any], actor: Actor) -> FlowVersion:
    return FlowVersion(
        id=new_id("flv"),
        flow_id=flow.id,
        number=number,
        status=VersionStatus.DRAFT,
        definition=definition,
        checksum=_checksum(definition),
        created_by=actor.principal_id,
        partner_id=flow.partner_id,
        merchant_id=flow.merchant_id,
    )


async def get_flow(session: AsyncSession, flow_id: str) -> Flow:
    return await get_visible(session, Flow, flow_id, "flow")


async def list_flows(
    session: AsyncSession, *, limit: int, cursor: str | None, merchant_id: str | None = None
) -> tuple[Sequence[Flow], str | None]:
    stmt = select(Flow)
    if merchant_id:
        stmt = stmt.where(Flow.merchant_id == merchant_id)
    return await paginate(session, stmt, Flow.id, limit=limit, cursor=cursor)


async def list_versions(session: AsyncSession, flow_id: str) -> Sequence[FlowVersion]:
    await get_flow(session, flow_id)
    return (
        await session.scalars(select(FlowVersion).where(FlowVersion.flow_id == flow_id).order_by(FlowVersion.number))
    ).all()


async def get_version(session: AsyncSession, flow_id: str, number: int) -> FlowVersion:
    version = await session.scalar(
        select(FlowVersion).where(FlowVersion.flow_id == flow_id, FlowVersion.number == number)
    )
    if version is None:
        raise NotFound("flow version", f"{flow_id}@{number}")
    return version


async def create_version(
    session: AsyncSession, actor: Actor, engine: Engine, flow_id: str, definition: dict[str, Any] | str
) -> FlowVersion:
    """A new draft version; versions are immutable once created."""
    flow = await get_flow(session, flow_id)
    data, _ = _as_dict(engine, definition)
    last = await session.scalar(select(func.max(FlowVersion.number)).where(FlowVersion.flow_id == flow.id))
    version = _new_version(flow, (last or 0) + 1, data, actor)
    session.add(version)
    record(
        session,
        actor,
        "flows.version.create",
        target_type="flow",
        target_id=flow.id,
        partner_id=flow.partner_id,
        merchant_id=flow.merchant_id,
        after={"version": version.number, "checksum": version.checksum},
    )
    await session.flush()
    return version


async def _check_subflows(session: AsyncSession, flow: Flow, definition: FlowDefinition) -> None:
    """Every sub-flow must be published in the merchant, and sub-flows must not form a cycle."""
    refs = subflow_refs(definition)
    if not refs:
        return
    rows = (
        await session.execute(
            select(Flow.key, FlowVersion.definition)
            .join(FlowVersion, FlowVersion.flow_id == Flow.id)
            .where(Flow.merchant_id == flow.merchant_id, FlowVersion.number == Flow.published_version)
        )
    ).all()
    graph: dict[str, set[str]] = {}
    for key, data in rows:
        try:
            graph[key] = {k for _p, k in subflow_refs(validate_definition(data))}
        except InvalidFlow:
            graph[key] = set()
    graph[flow.key] = {k for _p, k in refs}
    errors = []
    for path, key in refs:
        if key != flow.key and key not in graph:
            errors.append({"path": path, "problem": f"flow {key!r} has no published version in this merchant"})
            continue
        cycle = _find_cycle(graph, key, flow.key)
        if cycle is not None:
            chain = " → ".join([flow.key, *cycle])
            errors.append({"path": path, "problem": f"sub-flows form a cycle: {chain}"})
    if errors:
        raise InvalidFlow(errors)


def _find_cycle(graph: dict[str, set[str]], start: str, target: str) -> list[str] | None:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, trail = stack.pop()
        if node == target:
            return trail
        if node in seen:
            continue
        seen.add(node)
        stack.extend((nxt, [*trail, nxt]) for nxt in sorted(graph.get(node, ())))
    return None


async def publish_version(
    session: AsyncSession, actor: Actor, engine: Engine, flow_id: str, number: int
) -> FlowVersion:
    """Publish a version: new runs start on it; runs in flight keep theirs. Triggers follow it."""
    flow = await get_flow(session, flow_id)
    version = await get_version(session, flow_id, number)
    if version.status == VersionStatus.PUBLISHED:
        return version
    definition = engine.validate(version.definition)
    await _check_subflows(session, flow, definition)
    before = {"published_version": flow.published_version}
    await session.execute(
        update(FlowVersion)
        .where(FlowVersion.flow_id == flow.id, FlowVersion.status == VersionStatus.PUBLISHED)
        .values(status=VersionStatus.RETIRED)
    )
    version.status = VersionStatus.PUBLISHED
    version.published_at = utcnow()
    flow.published_version = number
    await _sync_triggers(session, flow, version, definition)
    record(
        session,
        actor,
        "flows.version.publish",
        target_type="flow",
        target_id=flow.id,
        partner_id=flow.partner_id,
        merchant_id=flow.merchant_id,
        before=before,
        after={"published_version": number, "checksum": version.checksum},
    )
    await session.flush()
    return version


def next_cron_fire(cron: str, tz: str, after: datetime) -> datetime:
    """The next fire time of a cron expression in a time zone, as UTC."""
    local = after.astimezone(ZoneInfo(tz))
    nxt: datetime = croniter(cron, local).get_next(datetime)
    return nxt.astimezone(ZoneInfo("UTC"))


async def _sync_triggers(session: AsyncSession, flow: Flow, version: FlowVersion, definition: FlowDefinition) -> None:
    existing = {t.name: t for t in (await session.scalars(select(Trigger).where(Trigger.flow_id == flow.id))).all()}
    now = utcnow()
    seen = set()
    for trig in definition.triggers:
        seen.add(trig.name)
        row = existing.get(trig.name)
        if row is None:
            row = Trigger(
                id=new_id("trg"),
                flow_id=flow.id,
                name=trig.name,
                partner_id=flow.partner_id,
                merchant_id=flow.merchant_id,
                cursor=None,
                cursor_version=0,
            )
            session.add(row)
        row.version_id = version.id
        row.kind = trig.type
        row.config = trig.model_dump(mode="json")
        row.enabled = True
        row.event_name = trig.event if isinstance(trig, EventTrigger) else None
        if isinstance(trig, CronTrigger):
            row.next_fire_at = next_cron_fire(trig.cron, trig.timezone, now)
        elif isinstance(trig, PollTrigger):
            row.next_fire_at = row.next_fire_at or now
        else:
            row.next_fire_at = None
    for name, row in existing.items():
        if name not in seen:
            row.enabled = False


async def list_triggers(session: AsyncSession, flow_id: str) -> Sequence[Trigger]:
    await get_flow(session, flow_id)
    return (await session.scalars(select(Trigger).where(Trigger.flow_id == flow_id).order_by(Trigger.name))).all()


# -- runs -------------------------------------------------------------------------------------


def new_run_row(
    flow_id: str,
    version_id: str,
    partner_id: str | None,
    merchant_id: str | None,
    input_: Any,
    trigger: dict[str, Any],
    dedup_key: str | None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Column values of a new queued run (Core inserts: intake, scheduler)."""
    now = utcnow()
    return {
        "id": run_id or new_id("run"),
        "flow_id": flow_id,
        "version_id": version_id,
        "status": RunStatus.QUEUED,
        "trigger": trigger,
        "input": input_,
        "dedup_key": dedup_key,
        "parent_run_id": None,
        "parent_step_path": None,
        "available_at": now,
        "lease_epoch": 0,
        "claims": 0,
        "generation": 0,
        "replays": [],
        "created_at": now,
        "updated_at": now,
        "partner_id": partner_id,
        "merchant_id": merchant_id,
    }


async def start_run(session: AsyncSession, actor: Actor, flow_id: str, data: RunStart) -> tuple[Run, bool]:
    """Start a run of the published version (manual trigger). Returns (run, created)."""
    flow = await get_flow(session, flow_id)
    if flow.published_version is None:
        raise InvalidState(f"Flow {flow.key!r} has no published version; publish one first.")
    dedup = f"manual:{flow.id}:{data.idempotency_key}" if data.idempotency_key else None
    if dedup:
        existing = await session.scalar(select(Run).where(Run.dedup_key == dedup))
        if existing is not None:
            return existing, False
    version = await get_version(session, flow.id, flow.published_version)
    row = new_run_row(
        flow.id,
        version.id,
        flow.partner_id,
        flow.merchant_id,
        data.input,
        {"kind": "manual", "by": actor.principal_id},
        dedup,
    )
    run = Run(**row)
    session.add(run)
    record(
        session,
        actor,
        "runs.run.start",
        target_type="run",
        target_id=run.id,
        partner_id=run.partner_id,
        merchant_id=run.merchant_id,
        after={"flow_id": flow.id, "version": version.number},
    )
    await session.flush()
    return run, True


async def get_run(session: AsyncSession, run_id: str) -> Run:
    return await get_visible(session, Run, run_id, "run")


async def list_runs(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    status: str | None = None,
    flow_id: str | None = None,
    merchant_id: str | None = None,
) -> tuple[Sequence[Run], str | None]:
    stmt = select(Run)
    if status:
        stmt = stmt.where(Run.status == status)
    if flow_id:
        stmt = stmt.where(Run.flow_id == flow_id)
    if merchant_id:
        stmt = stmt.where(Run.merchant_id == merchant_id)
    return await paginate(session, stmt, Run.id, limit=limit, cursor=cursor)


async def get_journal(
    session: AsyncSession, run_id: str, *, limit: int = 500, after_seq: int = 0
) -> list[JournalEntry]:
    await get_run(session, run_id)
    rows = await session.scalars(
        select(JournalEntry)
        .where(JournalEntry.run_id == run_id, JournalEntry.seq > after_seq)
        .order_by(JournalEntry.seq)
        .limit(max(1, min(limit, 500)))
    )
    return list(rows.all())


async def _cancel_waits(session: AsyncSession, run_id: str) -> None:
    await session.execute(
        update(Wait)
        .where(Wait.run_id == run_id, Wait.status == WaitStatus.OPEN)
        .values(status=WaitStatus.CANCELLED, resolved_at=utcnow())
    )


async def cancel_run(session: AsyncSession, actor: Actor, run_id: str) -> Run:
    """Cancel a run that has not ended. Bumps the fencing token, so its worker cannot commit."""
    run = await get_run(session, run_id)
    if run.status in FINAL_STATUSES:
        raise InvalidState(f"Run {run.id} already ended ({run.status}); only unfinished runs can be cancelled.")
    before = {"status": run.status}
    run.status = RunStatus.CANCELLED
    run.lease_epoch += 1
    run.lease_owner = None
    run.lease_expires_at = None
    run.finished_at = utcnow()
    await _cancel_waits(session, run.id)
    if run.parent_run_id:
        await session.execute(
            update(Wait)
            .where(Wait.run_id == run.parent_run_id, Wait.wait_key == run.id, Wait.status == WaitStatus.OPEN)
            .values(status=WaitStatus.RESOLVED, resolution={"status": RunStatus.CANCELLED}, resolved_at=utcnow())
        )
        await _wake(session, run.parent_run_id)
    record(
        session,
        actor,
        "runs.run.cancel",
        target_type="run",
        target_id=run.id,
        partner_id=run.partner_id,
        merchant_id=run.merchant_id,
        before=before,
        after={"status": run.status},
    )
    await session.flush()
    return run


async def _wake(session: AsyncSession, run_id: str) -> None:
    await session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.WAITING)
        .values(status=RunStatus.QUEUED, available_at=utcnow(), wake_at=None)
    )


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + ".") or path.startswith(root + "[")


async def replay_run(
    session: AsyncSession, actor: Actor, run_id: str, from_step: str, *, new_input: Any = None, edit: bool = False
) -> Run:
    """Replay a run from a step (optionally with edited input); earlier attempts stay in the journal."""
    run = await get_run(session, run_id)
    if run.status not in FINAL_STATUSES:
        raise InvalidState(f"Run {run.id} is {run.status}; cancel it or wait until it ends before replaying.")
    entries = (
        await session.scalars(
            select(JournalEntry)
            .where(JournalEntry.run_id == run.id, JournalEntry.superseded.is_(False))
            .order_by(JournalEntry.seq)
        )
    ).all()
    first = next((e for e in entries if _under(e.step_path, from_step)), None)
    if first is None:
        raise ValidationFailed(
            f"Run {run.id} has no journal entry for step {from_step!r}; pick a step it reached.",
            details={"from_step": from_step, "steps": sorted({e.step_path for e in entries})},
        )
    await session.execute(
        update(JournalEntry).where(JournalEntry.run_id == run.id, JournalEntry.seq >= first.seq).values(superseded=True)
    )
    await _cancel_waits(session, run.id)
    before = {"status": run.status, "input": run.input, "generation": run.generation}
    if edit:
        run.input = new_input
    run.replays = [
        *run.replays,
        {"at": utcnow().isoformat(), "by": actor.principal_id, "from_step": from_step, "edited_input": edit},
    ]
    run.generation += 1
    run.status = RunStatus.QUEUED
    run.available_at = utcnow()
    run.error = None
    run.output = None
    run.finished_at = None
    run.lease_epoch += 1
    run.lease_owner = None
    record(
        session,
        actor,
        "runs.run.replay",
        target_type="run",
        target_id=run.id,
        partner_id=run.partner_id,
        merchant_id=run.merchant_id,
        before=before,
        after={"from_step": from_step, "input": run.input, "edited_input": edit, "generation": run.generation},
    )
    await session.flush()
    return run


# -- waits and events -------------------------------------------------------------------------


async def list_waits(
    session: AsyncSession, *, limit: int, cursor: str | None, status: str | None = None, kind: str | None = None
) -> tuple[Sequence[Wait], str | None]:
    stmt = select(Wait)
    if status:
        stmt = stmt.where(Wait.status == status)
    if kind:
        stmt = stmt.where(Wait.kind == kind)
    return await paginate(session, stmt, Wait.id, limit=limit, cursor=cursor)


async def resolve_wait(
    session: AsyncSession,
    actor: Actor,
    wait_id: str,
    *,
    resolution: Any,
    idempotency_key: str,
    kinds: tuple[str, ...] = ("event", "approval"),
) -> tuple[Wait, bool]:
    """Resolve an open wait and make its run runnable. The same key again acts once: (wait, acted)."""
    wait = await get_visible(session, Wait, wait_id, "wait")
    if wait.kind not in kinds:
        raise NotFound("wait", wait_id)
    if wait.status == WaitStatus.RESOLVED:
        if wait.resolve_key == idempotency_key:
            return wait, False
        raise Conflict(f"Wait {wait.id} was already resolved (with another idempotency key).")
    if wait.status != WaitStatus.OPEN:
        raise InvalidState(f"Wait {wait.id} is {wait.status}; it can no longer be resolved.")
    result = await session.execute(
        update(Wait)
        .where(Wait.id == wait.id, Wait.status == WaitStatus.OPEN)
        .values(
            status=WaitStatus.RESOLVED,
            resolution=resolution,
            resolve_key=idempotency_key,
            resolved_by=actor.principal_id,
            resolved_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        await session.refresh(wait)
        if wait.status == WaitStatus.RESOLVED and wait.resolve_key == idempotency_key:
            return wait, False
        raise Conflict(f"Wait {wait.id} was resolved or timed out concurrently.")
    await _wake(session, wait.run_id)
    action = "approvals.approval.decide" if wait.kind == "approval" else "runs.wait.resolve"
    record(
        session,
        actor,
        action,
        target_type="wait",
        target_id=wait.id,
        partner_id=wait.partner_id,
        merchant_id=wait.merchant_id,
        before={"status": WaitStatus.OPEN},
        after={"status": WaitStatus.RESOLVED, "resolution": resolution, "run_id": wait.run_id},
    )
    await session.flush()
    await session.refresh(wait)
    return wait, True


async def publish_event(
    session: AsyncSession, actor: Actor, merchant_id: str, name: str, *, key: str | None, payload: Any, idem: str
) -> tuple[list[str], list[str]]:
    """Deliver an event: resolve waits for `key`, start flows with an `event` trigger named `name`."""
    merchant = await get_merchant(session, merchant_id)
    resolved: list[str] = []
    if key:
        waits = (
            await session.scalars(
                select(Wait).where(
                    Wait.merchant_id == merchant.id,
                    Wait.wait_key == key,
                    Wait.kind == "event",
                    Wait.status == WaitStatus.OPEN,
                )
            )
        ).all()
        for w in waits:
            _w, acted = await resolve_wait(session, actor, w.id, resolution=payload, idempotency_key=idem)
            if acted:
                resolved.append(w.id)
    triggers = (
        await session.scalars(
            select(Trigger).where(
                Trigger.merchant_id == merchant.id,
                Trigger.kind == "event",
                Trigger.event_name == name,
                Trigger.enabled.is_(True),
            )
        )
    ).all()
    started = []
    for t in triggers:
        dedup = f"event:{t.id}:{idem}"
        existing = await session.scalar(select(Run.id).where(Run.dedup_key == dedup))
        if existing:
            started.append(existing)
            continue
        row = new_run_row(
            t.flow_id, t.version_id, t.partner_id, t.merchant_id, payload, {"kind": "event", "event": name}, dedup
        )
        session.add(Run(**row))
        started.append(row["id"])
    record(
        session,
        actor,
        "runs.event.publish",
        target_type="merchant",
        target_id=merchant.id,
        partner_id=merchant.partner_id,
        merchant_id=merchant.id,
        after={"event": name, "key": key, "runs": started, "resolved_waits": resolved},
    )
    await session.flush()
    return started, resolved
