"""The exception desk's rules: open or group a case for a failure, and every action on a case.

Each function takes the caller's (scoped) session and actor, changes rows, flushes, writes the case
timeline and the governance audit event in the same transaction, and never commits. Notifications are
only queued here (the outbox); `notifications.deliver_pending` sends them after commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.cases import notifications
from crossdock.cases.failures import Failure
from crossdock.cases.models import ACTIVE_STATES, Case, CaseEvent, CaseRun, CaseState, SlaState
from crossdock.cases.routing import route
from crossdock.cases.schemas import CaseFilter
from crossdock.core.clock import utcnow
from crossdock.core.context import Actor
from crossdock.core.errors import Conflict, InvalidState, ValidationFailed
from crossdock.core.ids import new_id
from crossdock.core.pagination import paginate
from crossdock.core.repository import get_visible
from crossdock.engine import service as runs
from crossdock.engine.models import RunStatus
from crossdock.governance.audit import record

SYSTEM = Actor.system()
AUTO_RESOLUTION = "auto: run succeeded"
SUMMARY = ("state", "severity", "team", "assignee", "occurrences", "sla_state", "escalation_level")


def sla_window(start: datetime, minutes: int) -> tuple[datetime, datetime]:
    """(warn_at, due_at) of an SLA of `minutes` starting at `start`: the warning comes at 75%."""
    return start + timedelta(minutes=minutes * 0.75), start + timedelta(minutes=minutes)


def summary(case: Case) -> dict[str, Any]:
    return {f: getattr(case, f) for f in SUMMARY}


def log_action(
    session: AsyncSession,
    actor: Actor,
    case: Case,
    kind: str,
    *,
    text: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """One timeline entry and one audit event (`cases.case.<kind>`) for an action on a case."""
    data = {k: v for k, v in (("before", before), ("after", after)) if v is not None}
    session.add(
        CaseEvent(
            id=new_id("cev"),
            case_id=case.id,
            kind=kind,
            actor_type=actor.principal_type,
            actor_id=actor.principal_id,
            text=text,
            data=data,
            partner_id=case.partner_id,
            merchant_id=case.merchant_id,
        )
    )
    record(
        session,
        actor,
        f"cases.case.{kind}",
        target_type="case",
        target_id=case.id,
        partner_id=case.partner_id,
        merchant_id=case.merchant_id,
        before=before,
        after={**(after or {}), **({"text": text} if text else {})} or None,
    )


# -- opening and grouping ---------------------------------------------------------------------


async def open_or_group(
    session: AsyncSession, failure: Failure, *, actor: Actor = SYSTEM, now: datetime | None = None
) -> Case:
    """The case for this failure: an open case with the same trace key (counted once more and linked
    to the run), or a new routed, timed case. Idempotent per (run, run generation)."""
    now = now or utcnow()
    for _ in range(3):
        try:
            async with session.begin_nested():
                return await _open_or_group_once(session, actor, failure, now)
        except IntegrityError:
            continue  # another worker linked this run or opened this case first: look again
    raise Conflict(f"Could not record the failure of run {failure.run_id}; try again.")


async def _open_or_group_once(session: AsyncSession, actor: Actor, failure: Failure, now: datetime) -> Case:
    link = await session.get(CaseRun, failure.run_id) if failure.run_id else None
    if link is not None:
        linked = await get_case(session, link.case_id)
        if link.generation >= failure.generation:
            return linked  # this failure is already on a case
        if linked.state in ACTIVE_STATES:
            if await _relink(session, link, linked.id, failure):
                linked.last_seen_at = now
                log_action(session, actor, linked, "run_failed_again", after={"run_id": failure.run_id})
                await session.flush()
            return linked
    case = await session.scalar(select(Case).where(Case.open_key == failure.trace_key))
    case_id = case.id if case is not None else new_id("cas")
    if link is not None:
        if not await _relink(session, link, case_id, failure):
            return await get_case(session, link.case_id)
    elif failure.run_id:
        session.add(
            CaseRun(
                run_id=failure.run_id,
                case_id=case_id,
                step_path=failure.step_path,
                generation=failure.generation,
                outcome="failed",
                partner_id=failure.partner_id,
                merchant_id=failure.merchant_id,
            )
        )
    if case is None:
        return await _new_case(session, actor, failure, case_id, now)
    case.occurrences = Case.occurrences + 1
    case.last_seen_at = now
    await session.flush()
    await session.refresh(case)
    log_action(session, actor, case, "grouped", after={"run_id": failure.run_id, "occurrences": case.occurrences})
    await session.flush()
    return case


async def _relink(session: AsyncSession, link: CaseRun, case_id: str, failure: Failure) -> bool:
    """Point an existing link at `case_id` for a newer failure of its run; False if another worker did."""
    result = await session.execute(
        update(CaseRun)
        .where(CaseRun.run_id == link.run_id, CaseRun.generation < failure.generation)
        .values(case_id=case_id, generation=failure.generation, outcome="failed", step_path=failure.step_path)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(link)
    return getattr(result, "rowcount", 0) == 1


async def _new_case(session: AsyncSession, actor: Actor, failure: Failure, case_id: str, now: datetime) -> Case:
    routing = await route(
        session,
        partner_id=failure.partner_id,
        merchant_id=failure.merchant_id,
        category=failure.category,
        flow_id=failure.flow_id,
        amount=failure.amount,
        requested_severity=failure.severity,
    )
    warn_at, due_at = sla_window(now, routing.sla_minutes)
    case = Case(
        id=case_id,
        partner_id=failure.partner_id,
        merchant_id=failure.merchant_id,
        category=failure.category,
        severity=routing.severity,
        team=routing.team,
        state=CaseState.OPEN,
        title=failure.title,
        message=failure.message,
        trace_key=failure.trace_key,
        open_key=failure.trace_key,
        occurrences=1,
        first_seen_at=now,
        last_seen_at=now,
        run_id=failure.run_id,
        step_path=failure.step_path,
        flow_id=failure.flow_id,
        amount=failure.amount,
        payload=failure.payload,
        error=failure.error,
        rule_id=routing.rule_id,
        sla_minutes=routing.sla_minutes,
        sla_warn_at=warn_at,
        sla_due_at=due_at,
        sla_state=SlaState.OK,
        escalation_level=0,
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    await session.flush()
    log_action(
        session,
        actor,
        case,
        "open",
        after={"category": case.category, "run_id": case.run_id, "rule_id": routing.rule_id, **summary(case)},
    )
    await notifications.enqueue(session, case, "opened", now=now)
    await session.flush()
    return case


# -- reading ----------------------------------------------------------------------------------


async def get_case(session: AsyncSession, case_id: str) -> Case:
    return await get_visible(session, Case, case_id, "case")


async def case_detail(session: AsyncSession, case_id: str) -> tuple[Case, list[CaseRun], list[CaseEvent]]:
    """A case with its linked runs and its timeline (oldest first)."""
    case = await get_case(session, case_id)
    links = await session.scalars(select(CaseRun).where(CaseRun.case_id == case.id).order_by(CaseRun.linked_at))
    events = await session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id))
    return case, list(links.all()), list(events.all())


def filtered(stmt: Select[Any], flt: CaseFilter, now: datetime | None = None) -> Select[Any]:
    now = now or utcnow()
    for column, value in (
        (Case.merchant_id, flt.merchant_id),
        (Case.category, flt.category),
        (Case.severity, flt.severity),
        (Case.team, flt.team),
        (Case.state, flt.state),
        (Case.sla_state, flt.sla_state),
        (Case.assignee, flt.assignee),
        (Case.flow_id, flt.flow_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if flt.min_age_minutes is not None:
        stmt = stmt.where(Case.created_at <= now - timedelta(minutes=flt.min_age_minutes))
    if flt.max_age_minutes is not None:
        stmt = stmt.where(Case.created_at >= now - timedelta(minutes=flt.max_age_minutes))
    return stmt


async def list_cases(
    session: AsyncSession, flt: CaseFilter, *, limit: int, cursor: str | None, now: datetime | None = None
) -> tuple[Sequence[Case], str | None]:
    return await paginate(session, filtered(select(Case), flt, now), Case.id, limit=limit, cursor=cursor)


# -- actions ----------------------------------------------------------------------------------


async def _active(session: AsyncSession, case_id: str, action: str) -> Case:
    case = await get_case(session, case_id)
    if case.state not in ACTIVE_STATES:
        raise InvalidState(f"Case {case.id} is {case.state}; only open or in-progress cases can be {action}.")
    return case


async def assign(session: AsyncSession, actor: Actor, case_id: str, assignee: str | None) -> Case:
    case = await _active(session, case_id, "assigned")
    before = {"assignee": case.assignee}
    case.assignee = assignee
    log_action(session, actor, case, "assign", before=before, after={"assignee": assignee})
    await session.flush()
    return case


async def comment(session: AsyncSession, actor: Actor, case_id: str, text: str) -> Case:
    case = await get_case(session, case_id)
    log_action(session, actor, case, "comment", text=text)
    case.updated_at = utcnow()
    await session.flush()
    return case


async def start(session: AsyncSession, actor: Actor, case_id: str) -> Case:
    case = await _active(session, case_id, "started")
    if case.state == CaseState.IN_PROGRESS:
        raise InvalidState(f"Case {case.id} is already in progress.")
    case.state = CaseState.IN_PROGRESS
    log_action(session, actor, case, "start", before={"state": CaseState.OPEN}, after={"state": case.state})
    await session.flush()
    return case


async def retry(session: AsyncSession, actor: Actor, case_id: str) -> Case:
    """Replay every failed run of the case from its failed step, with the same input."""
    case = await _active(session, case_id, "retried")
    links = await session.scalars(select(CaseRun).where(CaseRun.case_id == case.id, CaseRun.outcome == "failed"))
    replayed: list[str] = []
    for link in links.all():
        run = await runs.get_run(session, link.run_id)
        step = link.step_path or case.step_path
        if run.status != RunStatus.NEEDS_ATTENTION or not step:
            continue
        await runs.replay_run(session, actor, run.id, step)
        link.outcome = "retrying"
        replayed.append(run.id)
    if not replayed:
        raise InvalidState(f"Case {case.id} has no failed run waiting for a retry.")
    before = {"state": case.state}
    case.state = CaseState.IN_PROGRESS
    log_action(session, actor, case, "retry", before=before, after={"state": case.state, "runs": replayed})
    await session.flush()
    return case


async def edit_and_replay(
    session: AsyncSession,
    actor: Actor,
    case_id: str,
    payload: Any,
    *,
    run_id: str | None = None,
    from_step: str | None = None,
) -> Case:
    """Replay one run of the case from its failed step (or `from_step`) with a new input (the edited payload).

    Steps before the replayed one keep their journalled outputs; only steps from it on see the new input."""
    case = await _active(session, case_id, "replayed")
    rid = run_id or case.run_id
    link = await session.get(CaseRun, rid) if rid else None
    if link is None or link.case_id != case.id:
        raise ValidationFailed(f"Run {rid!r} is not linked to case {case.id}.", details={"run_id": rid})
    run = await runs.get_run(session, link.run_id)
    step = from_step or link.step_path or case.step_path
    if run.status != RunStatus.NEEDS_ATTENTION or not step:
        raise InvalidState(f"Run {run.id} is {run.status}; only a failed run can be replayed from its failed step.")
    before = {"run_id": run.id, "payload": run.input, "state": case.state}
    await runs.replay_run(session, actor, run.id, step, new_input=payload, edit=True)
    link.outcome = "retrying"
    case.payload = payload
    case.state = CaseState.IN_PROGRESS
    after = {"run_id": run.id, "payload": payload, "from_step": step, "state": case.state}
    log_action(session, actor, case, "replay", before=before, after=after)
    await session.flush()
    return case


async def _close(session: AsyncSession, actor: Actor, case_id: str, state: CaseState, reason: str, kind: str) -> Case:
    case = await _active(session, case_id, "resolved" if state == CaseState.RESOLVED else "ignored")
    before = {"state": case.state}
    now = utcnow()
    result = await session.execute(
        update(Case)
        .where(Case.id == case.id, Case.state.in_(ACTIVE_STATES))
        .values(
            state=state,
            open_key=None,
            resolution=reason,
            resolved_at=now,
            resolved_by=actor.principal_id,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    await session.refresh(case)
    if getattr(result, "rowcount", 0) != 1:
        raise InvalidState(f"Case {case.id} was closed concurrently ({case.state}).")
    log_action(session, actor, case, kind, text=reason, before=before, after={"state": state})
    await session.flush()
    return case


async def resolve(session: AsyncSession, actor: Actor, case_id: str, reason: str) -> Case:
    return await _close(session, actor, case_id, CaseState.RESOLVED, reason, "resolve")


async def ignore(session: AsyncSession, actor: Actor, case_id: str, reason: str) -> Case:
    if not reason.strip():
        raise ValidationFailed("Ignoring a case needs a reason.")
    return await _close(session, actor, case_id, CaseState.IGNORED, reason, "ignore")


async def auto_resolve_for_run(session: AsyncSession, run_id: str, *, actor: Actor = SYSTEM) -> Case | None:
    """Mark a linked run succeeded; resolve its case when every run linked to it has succeeded."""
    link = await session.get(CaseRun, run_id)
    if link is None:
        return None
    run = await runs.get_run(session, run_id)
    if run.status != RunStatus.SUCCEEDED:
        return None
    if link.outcome != "succeeded":
        link.outcome = "succeeded"
        await session.flush()
    case = await get_case(session, link.case_id)
    pending = await session.scalar(
        select(func.count()).select_from(CaseRun).where(CaseRun.case_id == case.id, CaseRun.outcome != "succeeded")
    )
    if case.state not in ACTIVE_STATES or pending:
        return None
    try:
        return await _close(session, actor, case.id, CaseState.RESOLVED, AUTO_RESOLUTION, "auto_resolve")
    except InvalidState:
        return None


# -- bulk -------------------------------------------------------------------------------------

BULK_LIMIT = 1000


async def bulk(
    session: AsyncSession,
    actor: Actor,
    flt: CaseFilter,
    action: str,
    *,
    assignee: str | None = None,
    text: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Apply one action to every visible case matching the filter; each case is audited on its own."""
    if flt.is_empty():
        raise ValidationFailed("A bulk action needs a filter with at least one field.")
    rows = (await session.scalars(filtered(select(Case), flt).order_by(Case.id).limit(BULK_LIMIT + 1))).all()
    if len(rows) > BULK_LIMIT:
        raise ValidationFailed(f"More than {BULK_LIMIT} cases match; narrow the filter.")
    applied: list[str] = []
    problems: list[dict[str, str]] = []
    for case in rows:
        try:
            async with session.begin_nested():
                await _apply(session, actor, case.id, action, assignee=assignee, text=text, reason=reason)
            applied.append(case.id)
        except (InvalidState, ValidationFailed) as exc:
            problems.append({"case_id": case.id, "problem": exc.message})
    return {
        "matched": len(rows),
        "applied": len(applied),
        "skipped": len(problems),
        "case_ids": applied,
        "problems": problems,
    }


async def _apply(
    session: AsyncSession,
    actor: Actor,
    case_id: str,
    action: str,
    *,
    assignee: str | None,
    text: str | None,
    reason: str | None,
) -> Case:
    if action == "assign":
        return await assign(session, actor, case_id, assignee)
    if action == "comment" and text:
        return await comment(session, actor, case_id, text)
    if action == "start":
        return await start(session, actor, case_id)
    if action == "retry":
        return await retry(session, actor, case_id)
    if action == "resolve" and reason:
        return await resolve(session, actor, case_id, reason)
    if action == "ignore" and reason:
        return await ignore(session, actor, case_id, reason)
    raise ValidationFailed(f"Bulk action {action!r} is not supported or lacks its argument.")
