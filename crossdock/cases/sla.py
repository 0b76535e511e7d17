"""The SLA clock: a warning at 75% of a case's SLA, and on breach notify the team, raise the severity one
level and start a new SLA for it (`escalation_level` + 1).

Every step is a conditional UPDATE on the level or state it moves from, so running `escalate_due` from
many processes at once escalates each case once per level.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.cases import notifications
from crossdock.cases.models import ACTIVE_STATES, Case, SlaState
from crossdock.cases.routing import SLA_MINUTES, raised
from crossdock.cases.service import SYSTEM, log_action, sla_window
from crossdock.core.clock import utcnow
from crossdock.core.context import Actor


async def escalate_due(
    session: AsyncSession, now: datetime | None = None, *, actor: Actor = SYSTEM, limit: int = 500
) -> dict[str, int]:
    """Warn cases past 75% of their SLA and escalate those past due; returns {"warned", "escalated"}."""
    now = now or utcnow()
    warned = escalated = 0
    warn = await session.scalars(
        select(Case)
        .where(
            Case.state.in_(ACTIVE_STATES),
            Case.sla_state == SlaState.OK,
            Case.sla_warn_at <= now,
            Case.sla_due_at > now,
        )
        .limit(limit)
    )
    for case in warn.all():
        result = await session.execute(
            update(Case)
            .where(Case.id == case.id, Case.sla_state == SlaState.OK)
            .values(sla_state=SlaState.WARNING, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            continue
        await session.refresh(case)
        log_action(
            session,
            actor,
            case,
            "sla_warning",
            after={"sla_due_at": case.sla_due_at.isoformat(), "sla_state": "warning"},
        )
        warned += 1
    due = await session.scalars(
        select(Case).where(Case.state.in_(ACTIVE_STATES), Case.sla_due_at <= now).order_by(Case.sla_due_at).limit(limit)
    )
    for case in due.all():
        level, severity, old_due = case.escalation_level, case.severity, case.sla_due_at.isoformat()
        new_severity = raised(severity)
        minutes = SLA_MINUTES[new_severity]
        warn_at, due_at = sla_window(now, minutes)
        result = await session.execute(
            update(Case)
            .where(Case.id == case.id, Case.escalation_level == level, Case.state.in_(ACTIVE_STATES))
            .values(
                escalation_level=level + 1,
                severity=new_severity,
                sla_state=SlaState.BREACHED,
                sla_minutes=minutes,
                sla_warn_at=warn_at,
                sla_due_at=due_at,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            continue  # another process escalated this level
        await session.refresh(case)
        before = {"severity": severity, "escalation_level": level, "sla_due_at": old_due}
        after = {"severity": new_severity, "escalation_level": level + 1, "sla_due_at": due_at.isoformat()}
        log_action(session, actor, case, "escalate", before=before, after=after)
        await notifications.enqueue(session, case, "breached", now=now)
        escalated += 1
    await session.flush()
    return {"warned": warned, "escalated": escalated}
