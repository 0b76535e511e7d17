"""Executing one run: the step types, retries, waits and the journal fast path.

A `RunExecution` walks the compiled definition. A step already journalled (succeeded, not
superseded by a replay) is skipped and its output reused, so a run resumed by another worker
continues from its last journalled step. Trivial steps (map, condition, log, ...) are buffered and
journalled together with the next commit; a step with an external effect is committed (with its
effect-ledger row) before the next step starts, or together with the run's final update when nothing
follows it. Waiting (timers, events, approvals, sub-flows,
retry backoff) ends the execution: the run is parked in the database and holds no task.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crossdock.connectors.errors import ConnectorError
from crossdock.core.clock import as_utc, utcnow
from crossdock.core.ids import new_id
from crossdock.engine.actions import ActionContext, StepFailed
from crossdock.engine.compiled import CompiledFlow, CompiledStep
from crossdock.engine.core import Engine
from crossdock.engine.definitions import EmitStep, RaiseCaseStep, SubflowStep, WaitStep
from crossdock.engine.expressions import truthy
from crossdock.engine.journal import RUNS, WAITS, CommitBatcher, CommitOp, LeaseLost
from crossdock.engine.models import Effect, Flow, FlowVersion, RunStatus, Trigger, WaitStatus

log = logging.getLogger("crossdock.engine.steps")


class Suspend(Exception):
    """Park the run: `queued` until `at` (retry backoff) or `waiting` for a wait or timer."""

    def __init__(self, status: str, at: datetime | None, wait_ids: list[str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.at = at
        self.wait_ids = wait_ids or []


class Terminal(Exception):
    """The run cannot go on by itself: it goes to needs_attention with this error."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", "terminal failure"))
        self.error = error


@dataclass
class ClaimedRun:
    id: str
    flow_id: str
    version_id: str
    partner_id: str | None
    merchant_id: str | None
    input: Any
    trigger: dict[str, Any]
    lease_epoch: int
    claims: int
    generation: int
    parent_run_id: str | None
    parent_step_path: str | None


@dataclass
class History:
    """What the journal and the waits table say about a run (empty for a fresh run)."""

    done: dict[str, Any] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    waits: dict[str, dict[str, Any]] = field(default_factory=dict)
    fresh: bool = True


def describe(exc: BaseException) -> dict[str, Any]:
    err: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__}
    if isinstance(exc, ConnectorError):
        err.update(kind=str(exc.kind), category=str(exc.category), system=exc.system, status=exc.status)
    elif isinstance(exc, StepFailed):
        err.update(kind="data", category=exc.category)
    elif isinstance(exc, TimeoutError):
        err.update(kind="transient", category="timeout", message="the step timed out")
    return err


def retryable(exc: BaseException, retry_on: str) -> bool:
    if isinstance(exc, ConnectorError):
        return exc.transient
    if isinstance(exc, StepFailed):
        return exc.retryable
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    return retry_on == "all"


class RunExecution:
    """One claim of one run, from its first unjournalled step until it ends or parks."""

    def __init__(
        self, engine: Engine, batcher: CommitBatcher, run: ClaimedRun, flow: CompiledFlow, history: History
    ) -> None:
        self.engine = engine
        self.batcher = batcher
        self.run = run
        self.flow = flow
        self.history = history
        self.journal: list[dict[str, Any]] = []
        self.effects: list[dict[str, Any]] = []
        self.waits: list[dict[str, Any]] = []
        self.new_runs: list[dict[str, Any]] = []
        self.steps_done = 0
        # An effect step's journal and ledger rows are committed before the next step starts, or with
        # the run's final update when it was the last step (one group commit per run, not two).
        self.effect_pending = False
        self.committing: asyncio.Future[None] | None = None

    # -- commits --------------------------------------------------------------------------------

    async def flush(self, run_update: dict[str, Any] | None = None, **extra: Any) -> None:
        if not (self.journal or self.effects or self.waits or self.new_runs or run_update or extra):
            return
        op = CommitOp(
            self.run.id,
            self.run.lease_epoch,
            journal=self.journal,
            effects=self.effects,
            waits=self.waits,
            new_runs=self.new_runs,
            run_update=run_update,
            **extra,
        )
        self.journal, self.effects, self.waits, self.new_runs = [], [], [], []
        self.effect_pending = False  # before awaiting: a concurrent branch may set it again meanwhile
        commit = self.batcher.enqueue(op)
        self.committing = commit  # a concurrent branch whose effect rides in this op waits for it too
        try:
            await commit
        except LeaseLost:
            raise
        except Exception:
            if op.run_update is not None and (op.effects or op.new_runs):
                # The run update failed to commit; the effects it carried must still be recorded, or a
                # replay of this run would perform them again.
                kept = CommitOp(op.run_id, op.epoch, journal=op.journal, effects=op.effects, new_runs=op.new_runs)
                await self.batcher.submit(kept)
            raise
        finally:
            if self.committing is commit:
                self.committing = None

    def record(
        self, step: CompiledStep, path: str, status: str, output: Any, error: Any, started: datetime, t0: float
    ) -> None:
        attempt = self.history.attempts.get(path, 0) + 1
        self.history.attempts[path] = attempt
        self.journal.append(
            {
                "run_id": self.run.id,
                "step_path": path,
                "step_type": step.type,
                "attempt": attempt,
                "status": status,
                "output": output,
                "error": error,
                "started_at": started,
                "finished_at": utcnow(),
                "duration_ms": (time.perf_counter() - t0) * 1000.0,
                "lease_epoch": self.run.lease_epoch,
                "superseded": False,
                "partner_id": self.run.partner_id,
                "merchant_id": self.run.merchant_id,
            }
        )

    # -- the run --------------------------------------------------------------------------------

    async def execute(self) -> str:
        """Run until the end or a park; returns the run's new status. Raises LeaseLost."""
        try:
            return await self._execute()
        except LeaseLost:
            raise
        except Exception:
            # An engine error (the worker parks the run): effects already performed must not be lost
            # with it, or a replay would perform them again.
            if self.effects:
                try:
                    await self.flush()
                except Exception:
                    log.exception("run %s: could not record its effects before parking", self.run.id)
            raise

    async def _execute(self) -> str:
        run = self.run
        data: dict[str, Any] = {
            "input": run.input,
            "trigger": run.trigger,
            "run": {"id": run.id, "merchant_id": run.merchant_id, "partner_id": run.partner_id},
            "steps": {},
        }
        now = utcnow()
        release = {"lease_owner": None, "lease_expires_at": None}
        try:
            await self.run_steps(self.flow.steps, "", data)
        except Suspend as s:
            if s.status == RunStatus.QUEUED:
                update_ = {"status": RunStatus.QUEUED, "available_at": s.at or now, "wake_at": None, **release}
                await self.flush(update_)
            else:
                update_ = {"status": RunStatus.WAITING, "wake_at": s.at, **release}
                await self.flush(update_, recheck_waits=s.wait_ids)
            return s.status
        except Terminal as t:
            await self.flush({"status": RunStatus.NEEDS_ATTENTION, "error": t.error, "finished_at": now, **release})
            return RunStatus.NEEDS_ATTENTION
        if self.flow.output is not None:
            output = self.flow.output(data)
        else:
            last = self.flow.steps[-1].id
            output = data["steps"].get(last)
        statements = [self._resolve_parent(RunStatus.SUCCEEDED, output)] if run.parent_run_id else []
        await self.flush(
            {"status": RunStatus.SUCCEEDED, "output": output, "error": None, "finished_at": now, **release},
            statements=statements,
        )
        return RunStatus.SUCCEEDED

    def _resolve_parent(self, status: str, output: Any) -> Any:
        run = self.run

        async def statement(conn: AsyncConnection) -> None:
            now = utcnow()
            await conn.execute(
                update(WAITS)
                .where(
                    WAITS.c.run_id == run.parent_run_id,
                    WAITS.c.step_path == run.parent_step_path,
                    WAITS.c.wait_key == run.id,
                    WAITS.c.status == WaitStatus.OPEN,
                )
                .values(status=WaitStatus.RESOLVED, resolution={"status": status, "output": output}, resolved_at=now)
            )
            await conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run.parent_run_id, RUNS.c.status == RunStatus.WAITING)
                .values(status=RunStatus.QUEUED, available_at=now, wake_at=None)
            )

        return statement

    async def run_steps(self, steps: list[CompiledStep], prefix: str, data: dict[str, Any]) -> None:
        for step in steps:
            path = f"{prefix}.{step.id}" if prefix else step.id
            if path in self.history.done:
                data["steps"][step.id] = self.history.done[path]
                continue
            await self.run_step(step, path, data)

    async def run_step(self, step: CompiledStep, path: str, data: dict[str, Any]) -> None:
        if self.effect_pending:
            await self.flush()
        elif self.committing is not None:
            await asyncio.shield(self.committing)  # another branch is committing rows this one produced
        handler = getattr(self, f"_step_{step.type}", None) or self._step_custom
        started, t0 = utcnow(), time.perf_counter()
        effect = False
        try:
            if step.timeout_s is not None and (step.type == "action" or step.type in self.engine.custom_steps):
                output, effect = await asyncio.wait_for(handler(step, path, data), step.timeout_s)
            else:
                output, effect = await handler(step, path, data)
        except (Suspend, Terminal, LeaseLost):
            raise
        except Exception as exc:
            self.fail(step, path, exc, started, t0)
        self.record(step, path, "succeeded", output, None, started, t0)
        self.history.done[path] = output
        data["steps"][step.id] = output
        self.steps_done += 1
        metrics = self.engine.metrics
        metrics.child(metrics.step_latency, step.type).observe(time.perf_counter() - t0)
        if effect:
            self.effect_pending = True

    def fail(self, step: CompiledStep, path: str, exc: Exception, started: datetime, t0: float) -> None:
        """Journal a failed attempt, then park for a retry or raise Terminal."""
        error = describe(exc)
        self.record(step, path, "failed", None, error, started, t0)
        failures = self.history.failures.get(path, 0) + 1
        self.history.failures[path] = failures
        policy = step.retry
        if retryable(exc, policy.retry_on) and failures < policy.max_attempts:
            delay = min(policy.max_backoff_s, policy.backoff_s * (2 ** (failures - 1)))
            delay *= 1 + random.random() * policy.jitter
            if isinstance(exc, ConnectorError) and exc.retry_after:
                delay = max(delay, exc.retry_after)
            self.engine.metrics.step_retries.labels(type=step.type).inc()
            raise Suspend(RunStatus.QUEUED, utcnow() + timedelta(seconds=delay)) from exc
        raise Terminal({**error, "step": path, "attempts": failures}) from exc

    # -- step types -----------------------------------------------------------------------------

    def _context(self, path: str, key: str) -> ActionContext:
        run = self.run
        return ActionContext(
            run_id=run.id,
            step_path=path,
            attempt=self.history.attempts.get(path, 0) + 1,
            partner_id=run.partner_id,
            merchant_id=run.merchant_id,
            idempotency_key=key,
            http=self.engine.http,
            acquire=self.engine.rates.acquire,
            ledger=self.ledger,
        )

    async def ledger(self, key: str) -> Any | None:
        """The recorded result of an effect with this idempotency key, or None if it never happened."""
        async with self.engine.db.reads.connect() as conn:
            row = (await conn.execute(select(Effect.result).where(Effect.idempotency_key == key))).first()
        return None if row is None else {"result": row[0]}

    def _effect_row(self, key: str, path: str, action: str, result: Any) -> dict[str, Any]:
        return {
            "idempotency_key": key,
            "run_id": self.run.id,
            "step_path": path,
            "action": action,
            "result": result,
            "created_at": utcnow(),
            "partner_id": self.run.partner_id,
            "merchant_id": self.run.merchant_id,
        }

    async def _step_action(self, step: CompiledStep, path: str, data: dict[str, Any]) -> tuple[Any, bool]:
        spec = self.engine.actions.get(step.model.action)  # type: ignore[attr-defined]
        payload = spec.validate_input(step.values["input"](data))
        business_key = step.values["key"](data) if "key" in step.values else None
        key = spec.key(self.run.id, path, business_key)
        if spec.effect and not self.history.fresh:
            recorded = await self.ledger(key)
            if recorded is not None:
                return recorded["result"], False
        if "account" in step.values:
            await self.engine.rates.acquire(str(step.values["account"](data)))
        output = spec.validate_output(await spec.fn(self._context(path, key), payload))
        if spec.effect:
            self.effects.append(self._effect_row(key, path, spec.name, output))
        return output, spec.effect

    async def _step_custom(self, step: CompiledStep, path: str, data: dict[str, Any]) -> tuple[Any, bool]:
        spec = self.engine.custom_steps.get(step.type)
        if spec is None:
            raise StepFailed(f"custom step type {step.type!r} is not installed in this worker", retryable=True)
        payload = step.values["input"](data)
        if spec.input_schema is not None:
            payload = spec.input_schema.model_validate(payload).model_dump(mode="json")
        key = f"{self.run.id}:{path}:"
        if spec.effect and not self.history.fresh:
            recorded = await self.ledger(key)
            if recorded is not None:
                return recorded["result"], False
        output = await spec.fn(self._context(path, key), payload)
        if spec.effect:
            self.effects.append(self._effect_row(key, path, spec.name, output))
        return output, spec.effect

    async def _step_map(self, step: CompiledStep, path: str, data: dict[str, Any]) -> tuple[Any, bool]:
        return step.values["output"](data), False

    async def _step_condition(self, step: CompiledStep, path: str, data: dict[str, Any]) -> tuple[Any, bool]:
        for index, (cond, body) in enumerate(step.branches):
            if cond is None or truthy(cond(data)):
                await self.run_steps(body, path, data)
                if step.type == "condition":
                    return {"branch": "then" if index == 0 else "else"}, False
                return {"branch": "default" if cond is None else index}, False
        return {"branch": None}, False

    _step_branch = _step_condition

    async def _step_foreach(self, step: CompiledStep, path: str, data: dict[str, Any]) -> tuple[Any, bool]:
        items = step.values["items"](data)
        if not isinstance(items, list):
            raise StepFailed(f"`items` of {path} gave {type(items).__name__}, not a list", category="validation")
        sem = asyncio.Semaphore(step.model.concurrency)  # type: ignore[attr-defined]
        results: list[Any] = [None] * len(items)
        last = step.body[-1].id
        output = step.values.get("output")

        async def one(i: int, item: Any) -> None:
            async with sem:
                scope = {**data, "item": item, "index": i, "steps": dict(data["steps"])}
                await self.run_steps(step.body, f"{path}[{i}]", scope)
                results[i] = output(scope) if output is not None else scope["steps"].get(last)

        outcomes = await asyncio.gather(*(one(i, it) for i, it in enumerate(items)), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        for kind in (LeaseLost, Terminal):
            for o in failures:
                if isinstance(o, kind):
                    raise o
        suspends = [o for o in failures if isinstance(o, Suspend)]
        others = [o for o in failures if not isinstance(o, Suspend)]
        if others:
            raise others[0]
        if suspends:
            waiting = [s for s in suspends if s.status == RunStatus.WAITING]
            times = [s.at for s in suspends if s.at is not None]
            wait_ids = [w for s in suspends for w in s.wait_ids]
            status = RunStatus.WAITING if waiting else RunStatus.QUEUED
            at = min(times) if times and (not waiting or all(s.at for s in waiting)) else None
            raise Suspend(status, at, wait_ids)
        return results, False

    def _wait_row(
        self, path: str, kind: str, key: str | None, expires: datetime | None, **extra: Any
    ) -> dict[str, Any]:
        row = {
            "id": new_id("wait"),
            "run_id": self.run.id,
            "step_path": path,
            "generation": self.run.generation,
            "kind": kind,
            "wait_key": key,
            "status": WaitStatus.OPEN,
            "prompt": None,
            "approvers": [],
            "expires_at": expires,
            "resolution": None,
            "created_at": utcnow(),
            "partner_id": self.run.partner_id,
            "merchant_id": self.run.merchant_id,
            **extra,
        }
        self.waits.append(row)
        return row

    async def _step_timer(self, step: CompiledStep, path: str, data: dict[str, Any]) -> tuple[Any, bool]:
        now = utcnow()
        wait = self.history.waits.get(path)
        if wait is None:
            if "seconds" in step.values:
                due = now + timedelta(seconds=float(step.values["seconds"](data)))
            else:
                due = as_utc(datetime.fromisoformat(str(step.values["until"](data))))
            if due <= now:
                return {"fired_at": now.isoformat()}, False
            row = self._wait_row(path, "timer", None, due)
            raise Suspend(RunStatus.WAITING, due, [row["id"]])
        due = as_utc(wait["expires_at"])
        if now >= due:
            return {"fired_at": due.isoformat()}, False
        raise Suspend(RunStatus.WAITING, due, [])

    async def _step_wait_for_event(self, step: CompiledStep, path: str, data: dict[str, Any]) -> tuple[Any, bool]:
        model = step.model
        assert isinstance(model, WaitStep)
        now = utcnow()
        wait = self.history.waits.get(path)
        if wait is None:
            key = str(step.values["key"](data)) if "key" in step.values else f"{self.run.id}:{path}"
            expires = now + timedelta(seconds=model.timeout_s) if model.timeout_s else None
            kind = "approval" if step.type == "approval" else "event"
            prompt = str(step.values["prompt"](data)) if "prompt" in step.values else None
            row = self._wait_row(path, kind, key, expires, prompt=prompt, approvers=model.approvers)
            raise Suspend(RunStatus.WAITING, expires, [row["id"]])
        status = wait["status"]
        expires = as_utc(wait["expires_at"]) if wait["expires_at"] else None
        if status == WaitStatus.OPEN and expires is not None and now >= expires:
            resolved = await self._time_out(wait["id"])
            if resolved is not None:
                return resolved, False
            status = WaitStatus.TIMED_OUT
        if status == WaitStatus.RESOLVED:
            return wait["resolution"], False
        if status == WaitStatus.TIMED_OUT:
            if model.on_timeout == "fail":
                raise StepFailed(f"timed out waiting for {wait['wait_key']!r}", category="timeout")
            if isinstance(model.on_timeout, list):
                await self.run_steps(step.body, path, data)
            return {"timed_out": True}, False
        if status == WaitStatus.CANCELLED:
            raise StepFailed(f"the wait for {wait['wait_key']!r} was cancelled")
        raise Suspend(RunStatus.WAITING, expires, [wait["id"]])

    _step_approval = _step_wait_for_event

    async def _time_out(self, wait_id: str) -> Any | None:
        """Flip an open wait to timed_out; if a resolution won the race, return it instead."""
        async with self.engine.db.engine.begin() as conn:
            result = await conn.execute(
                update(WAITS)
                .where(WAITS.c.id == wait_id, WAITS.c.status == WaitStatus.OPEN)
                .values(status=WaitStatus.TIMED_OUT, resolved_at=utcnow())
            )
            if result.rowcount == 1:
                return None
            row = (await conn.execute(select(WAITS.c.status, WAITS.c.resolution).where(WAITS.c.id == wait_id))).one()
        return row.resolution if row.status == WaitStatus.RESOLVED else None

    async def _step_subflow(self, step: CompiledStep, path: str, data: dict[str, Any]) -> tuple[Any, bool]:
        model = step.model
        assert isinstance(model, SubflowStep)
        wait = self.history.waits.get(path)
        if wait is None:
            flow_id, version_id = await self._published(model.flow)
            child_id = new_id("run")
            self.new_runs.append(
                self._new_run(
                    child_id,
                    flow_id,
                    version_id,
                    step.values["input"](data),
                    {"kind": "subflow", "parent_run_id": self.run.id, "step": path},
                    f"subflow:{self.run.id}:{path}:{self.run.generation}",
                    parent_step_path=path,
                )
            )
            row = self._wait_row(path, "subflow", child_id, None)
            raise Suspend(RunStatus.WAITING, None, [row["id"]])
        if wait["status"] == WaitStatus.RESOLVED:
            res = wait["resolution"] or {}
            if res.get("status") == RunStatus.SUCCEEDED:
                return res.get("output"), False
            raise StepFailed(f"sub-flow run {wait['wait_key']} ended {res.get('status')}", category="subflow")
        raise Suspend(RunStatus.WAITING, None, [wait["id"]])

    def _new_run(
        self,
        run_id: str,
        flow_id: str,
        version_id: str,
        input_: Any,
        trigger: dict[str, Any],
        dedup: str,
        parent_step_path: str | None = None,
    ) -> dict[str, Any]:
        now = utcnow()
        return {
            "id": run_id,
            "flow_id": flow_id,
            "version_id": version_id,
            "status": RunStatus.QUEUED,
            "trigger": trigger,
            "input": input_,
            "dedup_key": dedup,
            "parent_run_id": self.run.id if parent_step_path else None,
            "parent_step_path": parent_step_path,
            "available_at": now,
            "lease_epoch": 0,
            "claims": 0,
            "generation": 0,
            "replays": [],
            "created_at": now,
            "updated_at": now,
            "partner_id": self.run.partner_id,
            "merchant_id": self.run.merchant_id,
        }

    async def _published(self, flow_key: str) -> tuple[str, str]:
        async with self.engine.db.reads.connect() as conn:
            row = (
                await conn.execute(
                    select(Flow.id, FlowVersion.id)
                    .join(FlowVersion, FlowVersion.flow_id == Flow.id)
                    .where(
                        Flow.merchant_id == self.run.merchant_id,
                        Flow.key == flow_key,
                        FlowVersion.number == Flow.published_version,
                    )
                )
            ).first()
        if row is None:
            raise StepFailed(f"sub-flow {flow_key!r} has no published version", category="mapping_gap")
        return row[0], row[1]

    async def _step_emit(self, step: CompiledStep, path: str, data: dict[str, Any]) -> tuple[Any, bool]:
        model = step.model
        assert isinstance(model, EmitStep)
        payload = step.values["payload"](data)
        async with self.engine.db.reads.connect() as conn:
            subs = (
                await conn.execute(
                    select(Trigger.id, Trigger.flow_id, Trigger.version_id).where(
                        Trigger.kind == "event",
                        Trigger.enabled.is_(True),
                        Trigger.event_name == model.event,
                        Trigger.merchant_id == self.run.merchant_id,
                    )
                )
            ).all()
        started = []
        for trigger_id, flow_id, version_id in subs:
            run_id = new_id("run")
            dedup = f"emit:{self.run.id}:{path}:{self.run.generation}:{trigger_id}"
            trig = {"kind": "event", "event": model.event, "trigger_id": trigger_id, "source_run_id": self.run.id}
            self.new_runs.append(self._new_run(run_id, flow_id, version_id, payload, trig, dedup))
            started.append(run_id)
        return {"event": model.event, "runs": started}, True

    async def _step_raise_case(self, step: CompiledStep, path: str, data: dict[str, Any]) -> tuple[Any, bool]:
        model = step.model
        assert isinstance(model, RaiseCaseStep)
        request = {
            "category": model.category,
            "severity": model.severity,
            "message": step.values["message"](data),
            "data": step.values["data"](data),
            "run_id": self.run.id,
            "step_path": path,
        }
        if self.engine.case_raiser is not None:
            return await self.engine.case_raiser(self._context(path, f"{self.run.id}:{path}:case"), request), True
        self.record(step, path, "succeeded", {"case_requested": request}, None, utcnow(), time.perf_counter())
        raise Terminal({"type": "CaseRaised", "kind": "case", "message": str(request["message"]), "case": request})
