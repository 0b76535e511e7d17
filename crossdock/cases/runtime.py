"""Connecting the exception desk to the engine: the raise_case hook and the periodic desk tick.

- `install(container)` sets the engine's case raiser: a `raise_case` step opens (or groups into) a
  case, then fails the step with `CaseRaised`, so the run stops in needs_attention linked to its case.
  A retry or replay of the case re-runs the step (and re-evaluates any condition around it).
- `sync_failed_runs(container)` finds needs_attention runs without a case (or that failed again after
  a replay) with one anti-join on `case_runs`, opens or groups their cases, and auto-resolves cases
  whose runs all succeeded since. `case_runs.run_id` is unique, so many sweepers cannot double-link.
- `tick(container)` is what the runtime loop calls every few seconds: sweep, SLA clock, deliveries.

This is the one module that reads the engine's runs table directly (for the anti-join); everything
else goes through `crossdock.engine.service`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from crossdock.cases import notifications, service
from crossdock.cases.failures import failure_from_request, failure_from_run
from crossdock.cases.models import CaseRun
from crossdock.cases.sla import escalate_due
from crossdock.core.clock import utcnow
from crossdock.core.tenancy import Scope
from crossdock.engine import service as runs
from crossdock.engine.actions import ActionContext, StepFailed
from crossdock.engine.core import engine_of
from crossdock.engine.models import Run, RunStatus, in_state

log = logging.getLogger("crossdock.cases.runtime")


class CaseRaised(StepFailed):
    """A raise_case step opened or grouped a case; the run stops in needs_attention, linked to it."""


def case_raiser(container: Any) -> Any:
    """The engine hook behind the `raise_case` step (see `Engine.set_case_raiser`)."""

    async def raise_case(ctx: ActionContext, request: dict[str, Any]) -> dict[str, Any]:
        async with container.db.session(Scope.everything()) as s:
            run = await runs.get_run(s, ctx.run_id)
            failure = failure_from_request(run, request)
            case = await service.open_or_group(s, failure)
            case_id = case.id
        raise CaseRaised(f"{failure.message} (case {case_id})", category=failure.category)

    return raise_case


def install(container: Any) -> None:
    """Wire the exception desk into this process's engine (call once per process, after bootstrap)."""
    engine_of(container).set_case_raiser(case_raiser(container))


async def sync_failed_runs(container: Any, *, limit: int = 200) -> dict[str, int]:
    """Open/group cases for failed runs that have none, and auto-resolve cases whose runs succeeded."""
    linked, resolved = 0, 0
    async with container.db.session(Scope.everything()) as s:
        rows = (
            await s.execute(
                select(Run.id)
                .outerjoin(CaseRun, CaseRun.run_id == Run.id)
                .where(
                    in_state(RunStatus.NEEDS_ATTENTION),
                    or_(CaseRun.run_id.is_(None), CaseRun.generation < Run.generation),
                )
                .order_by(Run.id)
                .limit(limit)
            )
        ).all()
        unlinked = [r[0] for r in rows]
        rows = (
            await s.execute(
                select(CaseRun.run_id)
                .join(Run, and_(Run.id == CaseRun.run_id, Run.status == RunStatus.SUCCEEDED))
                .where(CaseRun.outcome.in_(("failed", "retrying")))
                .limit(limit)
            )
        ).all()
        succeeded = [r[0] for r in rows]
    for run_id in unlinked:
        try:
            async with container.db.session(Scope.everything()) as s:
                run = await runs.get_run(s, run_id)
                tail = [] if (run.error or {}).get("step") else await runs.get_journal(s, run_id)
                await service.open_or_group(s, failure_from_run(run, tail))
            linked += 1
        except Exception:
            log.exception("could not open a case for run %s; will try again", run_id)
    for run_id in succeeded:
        async with container.db.session(Scope.everything()) as s:
            if await service.auto_resolve_for_run(s, run_id) is not None:
                resolved += 1
    return {"linked": linked, "resolved": resolved}


async def tick(container: Any, *, now: datetime | None = None) -> dict[str, int]:
    """One pass of the desk's background work: sweep runs, run the SLA clock, deliver notifications."""
    counts = await sync_failed_runs(container)
    async with container.db.session(Scope.everything()) as s:
        counts |= await escalate_due(s, now or utcnow())
    counts |= await notifications.deliver_pending(container, now=now)
    return counts
