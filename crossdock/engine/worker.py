"""The asyncio worker: claims batches of runs fairly, executes them concurrently, keeps leases.

Claiming is one statement per round trip: `UPDATE ... RETURNING` over the runs picked by a
window query that ranks each merchant's queued runs and takes them round-robin (first run of every
merchant, least recently served first, then the second, ...), skipping merchants already at their
in-flight cap (counted from `running` rows, so the cap holds across all workers). On PostgreSQL
the claim takes a transaction-scoped advisory lock (claims are short; this makes the caps exact)
and locks rows with `FOR UPDATE SKIP LOCKED`, and the same statement records when each claimed
merchant was served; on SQLite `BEGIN IMMEDIATE` serializes claims. After a claim that found nothing,
the next poll first asks whether any run is due at all, in one read without a transaction or lock:
an idle worker costs one round trip per poll instead of a claim transaction's four.

Every claim bumps `lease_epoch`, the fencing token each later write of the run is checked against.
A heartbeat renews the leases of the runs in hand; the reaper re-queues runs whose lease expired.
Backpressure: a worker never holds more than `concurrency` runs, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, String, bindparam, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from crossdock.core.clock import utcnow
from crossdock.core.db import JSONType, UTCDateTime
from crossdock.core.ids import new_ulid
from crossdock.core.rawpg import RawStatement
from crossdock.engine.core import Engine
from crossdock.engine.journal import JOURNAL, RUNS, WAITS, CommitBatcher, LeaseLost
from crossdock.engine.models import FINAL_STATUSES, MerchantQueue, RunStatus, in_state, unlocked_runs
from crossdock.engine.steps import ClaimedRun, History, RunExecution

log = logging.getLogger("crossdock.engine.worker")

_CLAIM_CTES = """
WITH running AS (
    SELECT merchant_id, count(*) AS n FROM engine_runs WHERE status = 'running' GROUP BY {group_key}
), ranked AS (
    SELECT r.id, r.merchant_id,
           row_number() OVER (PARTITION BY r.merchant_id ORDER BY r.available_at, r.id) AS rn
    FROM engine_runs r
    WHERE r.status = 'queued' AND r.available_at <= :now
), eligible AS (
    SELECT ranked.id FROM ranked
    LEFT JOIN running ON running.merchant_id = ranked.merchant_id
    LEFT JOIN engine_merchant_queues q ON q.merchant_id = ranked.merchant_id
    WHERE ranked.rn <= COALESCE(q.max_in_flight, :cap) - COALESCE(running.n, 0)
    ORDER BY ranked.rn, COALESCE(q.last_served_at, 0), ranked.id
    LIMIT :limit
)"""
_CLAIM_UPDATE = """
UPDATE engine_runs SET
    status = 'running', lease_owner = :owner, lease_expires_at = :exp, lease_epoch = lease_epoch + 1,
    claims = claims + 1, started_at = COALESCE(started_at, :now), updated_at = :now, wake_at = NULL
WHERE id IN ({locked})
RETURNING id, flow_id, version_id, partner_id, merchant_id, input, trigger, lease_epoch, claims, generation,
          parent_run_id, parent_step_path
"""
# PostgreSQL: the claimed merchants' `last_served_at` is set in the same statement (one round trip
# fewer per claim); SQLite has no data-modifying CTEs, so there it is a second statement.
_CLAIM_PG = """{ctes}, claimed AS ({update}), served AS (
    INSERT INTO engine_merchant_queues (merchant_id, last_served_at)
    SELECT DISTINCT merchant_id, CAST(:served AS double precision) FROM claimed WHERE merchant_id IS NOT NULL
    ON CONFLICT (merchant_id) DO UPDATE SET last_served_at = EXCLUDED.last_served_at
)
SELECT * FROM claimed"""
_LOCKED_PG = (
    "SELECT id FROM engine_runs WHERE id IN (SELECT id FROM eligible) AND status = 'queued' FOR UPDATE SKIP LOCKED"
)
_LOCKED_SQLITE = "SELECT id FROM eligible"
_CLAIM_LOCK_KEY = 0x63726F7373  # "cross"
_CLAIM_LOCK = text("SELECT pg_advisory_xact_lock(:k)")

_DT = UTCDateTime()


# SQLite's planner, left to itself, counts the running runs by walking the merchant index over every
# run the merchant ever had (8.5 ms at 30,000 runs, growing with the history) instead of the partial
# index of running runs (0.07 ms): `+merchant_id` takes that index out of the GROUP BY's reach.
# PostgreSQL has no unary plus for text, and plans this well.
_GROUP_KEY = {"postgresql": "merchant_id", "sqlite": "+merchant_id"}


def _claim_statement(dialect: str) -> Any:
    ctes = _CLAIM_CTES.format(group_key=_GROUP_KEY.get(dialect, "merchant_id"))
    if dialect == "postgresql":
        sql = _CLAIM_PG.format(ctes=ctes, update=_CLAIM_UPDATE.format(locked=_LOCKED_PG))
    else:
        sql = ctes + _CLAIM_UPDATE.format(locked=_LOCKED_SQLITE)
    return (
        text(sql)
        .bindparams(bindparam("now", type_=_DT), bindparam("exp", type_=_DT))
        .columns(
            id=String,
            flow_id=String,
            version_id=String,
            partner_id=String,
            merchant_id=String,
            input=JSONType,
            trigger=JSONType,
            lease_epoch=BigInteger,
            claims=Integer,
            generation=Integer,
            parent_run_id=String,
            parent_step_path=String,
        )
    )


# Is any run queued and due? The idle poll's one read (`Worker.claim`), on the partial index of queued runs.
_DUE = select(RUNS.c.id).where(in_state(RunStatus.QUEUED), RUNS.c.available_at <= bindparam("now")).limit(1)


def default_owner() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{new_ulid()[-8:]}"


class Worker:
    """One worker loop. Run several per process or several processes per machine; no leader."""

    def __init__(
        self,
        engine: Engine,
        *,
        owner: str | None = None,
        concurrency: int | None = None,
        claim_batch: int | None = None,
        lease_seconds: float | None = None,
        heartbeat_seconds: float | None = None,
        poll_seconds: float | None = None,
        merchant_concurrency: int | None = None,
        claim_pace_seconds: float | None = None,
    ) -> None:
        ws = engine.settings.worker
        self.engine = engine
        self.db = engine.db
        self.owner = owner or default_owner()
        self.concurrency = concurrency or ws.concurrency
        self.claim_batch = claim_batch or ws.claim_batch
        self.lease_seconds = lease_seconds or ws.lease_seconds
        self.heartbeat_seconds = heartbeat_seconds or ws.heartbeat_seconds
        self.poll_seconds = poll_seconds or ws.poll_seconds
        self.merchant_concurrency = merchant_concurrency or ws.merchant_concurrency
        self.claim_pace_seconds = ws.claim_pace_seconds if claim_pace_seconds is None else claim_pace_seconds
        self.batcher = CommitBatcher(
            self.db, lease_seconds=self.lease_seconds, concurrency=ws.commit_concurrency, metrics=engine.metrics
        )
        self.active: set[asyncio.Task[None]] = set()
        self._freed = asyncio.Event()  # set whenever a run's task ends (a slot is free)
        claim = _claim_statement(self.db.dialect)
        self._claim_stmt = RawStatement(claim, self.db.engine.dialect) if self.db.dialect == "postgresql" else claim
        self._idle = False  # the last claim found nothing: probe with `_anything_due` first
        self.claimed = 0  # runs
        self.claims = 0  # claims that found work
        self.finished = 0

    # -- claiming -------------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[ClaimedRun]:
        now = utcnow()
        probed = False
        if self._idle:
            # The last claim found nothing: ask first, in one cheap read (no transaction on
            # PostgreSQL, no write lock on SQLite), whether anything is due at all.
            if not await self._anything_due(now):
                return []
            probed = True
        params = {
            "now": now,
            "exp": now + timedelta(seconds=self.lease_seconds),
            "owner": self.owner,
            "cap": self.merchant_concurrency,
            "limit": limit,
        }
        served = now.timestamp()
        rows: Sequence[Any]
        async with self.db.engine.begin() as conn:
            if isinstance(self._claim_stmt, RawStatement):
                # The lock goes through SQLAlchemy, which begins the transaction; the claim, which
                # returns up to `limit` rows, through asyncpg in that transaction (`core.rawpg`).
                await conn.execute(_CLAIM_LOCK, {"k": _CLAIM_LOCK_KEY})
                rows = await self._claim_stmt.fetch(conn, params | {"served": served}, in_transaction=True)
            else:
                rows = (await conn.execute(self._claim_stmt, params)).all()
                merchants = {r.merchant_id for r in rows if r.merchant_id}
                if merchants:
                    await conn.execute(
                        sqlite_insert(MerchantQueue)
                        .values([{"merchant_id": m, "last_served_at": served} for m in sorted(merchants)])
                        .on_conflict_do_update(index_elements=["merchant_id"], set_={"last_served_at": served})
                    )
        # An empty claim makes the next poll probe first, except after a probe that saw runs due
        # (their merchants at their caps, or another worker was faster): then the next poll claims
        # directly, rather than probe and claim on every poll.
        self._idle = not rows and not probed
        # Rows by position (asyncpg records and SQLAlchemy rows alike), in `_CLAIM_UPDATE`'s RETURNING order.
        runs = [
            ClaimedRun(r[0], r[1], r[2], r[3], r[4], r[5], r[6] or {}, r[7], r[8], r[9], r[10], r[11]) for r in rows
        ]
        self.claimed += len(runs)
        self.claims += bool(runs)
        return runs

    async def _anything_due(self, now: Any) -> bool:
        async with self.db.single_reads.connect() as conn:
            return (await conn.execute(_DUE, {"now": now})).first() is not None

    async def histories(self, runs: list[ClaimedRun]) -> dict[str, History]:
        """Journal and waits of resumed runs, in two queries for the whole batch."""
        out = {r.id: History() for r in runs}
        resumed = {r.id: r for r in runs if r.claims > 1 or r.generation > 0}
        if not resumed:
            return out
        ids = sorted(resumed)
        async with self.db.reads.connect() as conn:
            jrows = (
                await conn.execute(
                    select(
                        JOURNAL.c.run_id,
                        JOURNAL.c.step_path,
                        JOURNAL.c.attempt,
                        JOURNAL.c.status,
                        JOURNAL.c.output,
                        JOURNAL.c.superseded,
                    )
                    .where(JOURNAL.c.run_id.in_(ids))
                    .order_by(JOURNAL.c.seq)
                )
            ).all()
            wrows = (await conn.execute(select(WAITS).where(WAITS.c.run_id.in_(ids)))).mappings().all()
        for rid in ids:
            out[rid].fresh = False
        for j in jrows:
            h = out[j.run_id]
            h.attempts[j.step_path] = max(h.attempts.get(j.step_path, 0), j.attempt)
            if j.superseded:
                continue
            if j.status == "succeeded":
                h.done[j.step_path] = j.output
            elif j.status == "failed":
                h.failures[j.step_path] = h.failures.get(j.step_path, 0) + 1
        for w in wrows:
            if w["generation"] == resumed[w["run_id"]].generation:
                out[w["run_id"]].waits[w["step_path"]] = dict(w)
        return out

    # -- execution ------------------------------------------------------------------------------

    async def execute(self, run: ClaimedRun, history: History) -> None:
        try:
            flow = await self.engine.compiled(run.version_id)
            status = await RunExecution(self.engine, self.batcher, run, flow, history).execute()
            if status in FINAL_STATUSES:
                metrics = self.engine.metrics
                metrics.child(metrics.runs_finished, status).inc()
                self.finished += 1
        except LeaseLost as exc:
            log.info("abandoning run: %s", exc)
        except Exception as exc:
            log.exception("engine error executing run %s", run.id)
            await self._park_broken(run, exc)

    async def _park_broken(self, run: ClaimedRun, exc: Exception) -> None:
        """An engine bug (not a step failure) must not drop the run: park it as needs_attention."""
        error = {"type": type(exc).__name__, "message": str(exc), "kind": "engine"}
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(
                    update(RUNS)
                    .where(RUNS.c.id == run.id, RUNS.c.lease_epoch == run.lease_epoch)
                    .values(
                        status=RunStatus.NEEDS_ATTENTION,
                        error=error,
                        finished_at=utcnow(),
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                )
        except Exception:
            log.exception("could not park run %s; the reaper will re-queue it", run.id)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.active.discard(task)
        self._freed.set()

    async def run_once(self) -> tuple[int, bool]:
        """Claim what fits and start executing it; returns the number of runs claimed, and whether
        that was all it asked for (then more are probably queued: claim again without pacing)."""
        free = self.concurrency - len(self.active)
        if free <= 0:
            return 0, False
        limit = min(free, self.claim_batch)
        runs = await self.claim(limit)
        if not runs:
            return 0, False
        histories = await self.histories(runs)
        for run in runs:
            task = asyncio.create_task(self.execute(run, histories[run.id]))
            self.active.add(task)
            task.add_done_callback(self._done)
        return len(runs), len(runs) >= limit

    async def run(self, stop: asyncio.Event, *, drain_seconds: float = 10.0) -> None:
        """Work until `stop` is set, then drain in-flight runs and release the rest."""
        self.batcher.start()
        _ = self.engine.http  # build the pooled client (and its TLS context) now, not inside a timed step
        heartbeat = asyncio.create_task(self._heartbeat(stop), name="crossdock-heartbeat")
        try:
            while not stop.is_set():
                self._freed.clear()  # before the claim: a run finishing during it must wake the wait below
                try:
                    claimed, claimed_all = await self.run_once()
                except Exception:
                    log.exception("claim failed; retrying")
                    claimed, claimed_all = 0, False
                busy = len(self.active) >= self.concurrency // 2
                if claimed and not busy and (claimed_all or self.claim_pace_seconds <= 0):
                    continue  # a backlog (or pacing is off): claim again at once
                # Wait for more work to gather: the poll interval when idle, the pace after a partial
                # claim (a trickle is then claimed ~pace apart, not a few runs per round trip), and
                # in either case no longer than until a run finishes when at least half busy.
                waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
                if busy:
                    waiters.append(asyncio.ensure_future(self._freed.wait()))
                timeout = self.claim_pace_seconds if claimed and self.claim_pace_seconds > 0 else self.poll_seconds
                _done, pending = await asyncio.wait(waiters, timeout=timeout, return_when="FIRST_COMPLETED")
                for p in pending:
                    p.cancel()
        finally:
            if self.active:
                _finished, still = await asyncio.wait(set(self.active), timeout=drain_seconds)
                for t in still:
                    t.cancel()
                await asyncio.gather(*still, return_exceptions=True)
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            await self.batcher.stop()
            await self.release()

    async def release(self) -> int:
        """Hand back every run this worker still holds (graceful shutdown)."""
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                update(RUNS)
                .where(RUNS.c.lease_owner == self.owner, in_state(RunStatus.RUNNING))
                .values(
                    status=RunStatus.QUEUED,
                    lease_owner=None,
                    lease_expires_at=None,
                    lease_epoch=RUNS.c.lease_epoch + 1,
                    available_at=utcnow(),
                )
            )
        return int(result.rowcount or 0)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.renew_leases()
            except Exception:
                log.exception("heartbeat failed")

    async def renew_leases(self) -> int:
        """Extend the lease of every run this worker holds, except runs a commit has locked right now
        (that commit extends or ends them); returns how many were extended."""
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                update(RUNS)
                .where(unlocked_runs(RUNS.c.lease_owner == self.owner, in_state(RunStatus.RUNNING)))
                .values(lease_expires_at=utcnow() + timedelta(seconds=self.lease_seconds))
            )
        return int(result.rowcount or 0)


def queue_depths(rows: list[tuple[str | None, int]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for merchant, n in rows:
        out[merchant or "-"] += n
    return dict(out)
