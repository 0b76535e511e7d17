"""The step journal's group commit: journal rows of many runs share one fenced transaction.

Each run execution hands a `CommitOp` (journal rows, effect-ledger rows, waits, child runs, a final
run update) to the process's `CommitBatcher` and awaits it. The batcher takes everything queued
while the previous transaction was in flight and writes it in one transaction:

1. the fence: `... WHERE (id, lease_epoch) IN (...) AND status = 'running'`, an UPDATE extending the
   lease for runs that go on, a `SELECT ... FOR UPDATE` for runs the op ends or parks (their row
   is rewritten in step 3): ops of runs whose epoch moved on (reaped, cancelled, replayed, claimed
   by another worker) are dropped and their callers get `LeaseLost`;
2. multi-row INSERTs of the journal rows, effects, waits and child runs;
3. the final run updates (executemany).

So a worker that lost its lease can never commit, and commits/s stays near the database's commit
rate while steps/s grows with the batch size.

On PostgreSQL a batch of plain ops (journal rows, effects and run updates; no waits, child runs or
extra statements, which is every op of a run that does not wait) is one autocommitted statement
instead (`PgBatchStatement`): the run updates are one JSON document, the journal and ledger rows one
typed array per column (`engine.bulk`), and data-modifying CTEs do the fence (an UPDATE of the runs
that returns the ones whose lease held) and insert only the rows of the runs it returned. One round
trip instead of six, and no per-row parameter processing in SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from crossdock.core.clock import utcnow
from crossdock.core.db import Database
from crossdock.core.metrics import Metrics
from crossdock.core.rawpg import RawStatement
from crossdock.engine.batching import GroupCommitter
from crossdock.engine.bulk import array_params, dumps, from_json, insert_from_arrays
from crossdock.engine.models import Effect, JournalEntry, Run, RunStatus, Wait

log = logging.getLogger("crossdock.engine.journal")

RUNS = cast(Table, Run.__table__)
JOURNAL = cast(Table, JournalEntry.__table__)
EFFECTS = cast(Table, Effect.__table__)
WAITS = cast(Table, Wait.__table__)


class LeaseLost(Exception):
    """The run's lease moved on (fencing token changed): abandon it without committing."""


Statement = Callable[[AsyncConnection], Awaitable[None]]


@dataclass
class CommitOp:
    run_id: str
    epoch: int
    journal: list[dict[str, Any]] = field(default_factory=list)
    effects: list[dict[str, Any]] = field(default_factory=list)
    waits: list[dict[str, Any]] = field(default_factory=list)
    new_runs: list[dict[str, Any]] = field(default_factory=list)
    run_update: dict[str, Any] | None = None
    recheck_waits: list[str] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    future: asyncio.Future[None] | None = None

    @property
    def plain(self) -> bool:
        """Only journal rows, effects and a run update (what `PgBatchStatement` writes)."""
        return not (self.waits or self.new_runs or self.recheck_waits or self.statements) and (
            self.run_update is None or self.run_update.keys() <= RUN_UPDATE_COLUMNS
        )


def _insert(dialect: str, table: Any) -> Any:
    return pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)


async def apply_ops(conn: AsyncConnection, dialect: str, ops: list[CommitOp], lease_seconds: float) -> set[str]:
    """Write `ops` in the caller's transaction; return the run ids whose fence held."""
    now = utcnow()
    held: set[tuple[str, int]] = set()
    # Runs that go on after this commit get their lease extended by the fence itself. Runs whose
    # op ends or parks them (a run update) are only locked: their row is rewritten below anyway,
    # and a second UPDATE would add a row version and an entry in every index of engine_runs.
    going_on = sorted({(op.run_id, op.epoch) for op in ops if op.run_update is None})
    ending = sorted({(op.run_id, op.epoch) for op in ops if op.run_update is not None} - set(going_on))
    if going_on:
        fenced = await conn.execute(
            update(RUNS)
            .where(tuple_(RUNS.c.id, RUNS.c.lease_epoch).in_(going_on), RUNS.c.status == RunStatus.RUNNING)
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            .returning(RUNS.c.id, RUNS.c.lease_epoch)
        )
        held.update((r[0], r[1]) for r in fenced)
    if ending:
        locked = await conn.execute(
            select(RUNS.c.id, RUNS.c.lease_epoch)
            .where(tuple_(RUNS.c.id, RUNS.c.lease_epoch).in_(ending), RUNS.c.status == RunStatus.RUNNING)
            .with_for_update()  # PostgreSQL; SQLite's BEGIN IMMEDIATE already excludes other writers
        )
        held.update((r[0], r[1]) for r in locked)
    good = [op for op in ops if (op.run_id, op.epoch) in held]
    if not good:
        return set()
    journal = [row for op in good for row in op.journal]
    if journal:
        await conn.execute(insert(JOURNAL), journal)
    effects = [row for op in good for row in op.effects]
    if effects:
        await conn.execute(_insert(dialect, EFFECTS).on_conflict_do_nothing(), effects)
    waits = [row for op in good for row in op.waits]
    if waits:
        await conn.execute(_insert(dialect, WAITS).on_conflict_do_nothing(), waits)
    new_runs = [row for op in good for row in op.new_runs]
    if new_runs:
        await conn.execute(_insert(dialect, RUNS).on_conflict_do_nothing(), new_runs)
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for op in good:
        if op.run_update:
            values = {**op.run_update, "updated_at": now}
            by_shape[tuple(sorted(values))].append({"_id": op.run_id, "_epoch": op.epoch, **values})
    for shape, rows in by_shape.items():
        stmt = (
            update(RUNS)
            .where(and_(RUNS.c.id == bindparam("_id"), RUNS.c.lease_epoch == bindparam("_epoch")))
            .values({k: bindparam(k) for k in shape})
        )
        await conn.execute(stmt, rows)
    for op in good:
        if op.recheck_waits:
            # A wait resolved while we were deciding to go back to waiting: make the run runnable.
            resolved = (
                WAITS.select()
                .with_only_columns(WAITS.c.id)
                .where(WAITS.c.id.in_(op.recheck_waits), WAITS.c.status != "open")
                .exists()
            )
            await conn.execute(
                update(RUNS)
                .where(RUNS.c.id == op.run_id, RUNS.c.status == RunStatus.WAITING, resolved)
                .values(status=RunStatus.QUEUED, available_at=now, wake_at=None)
            )
        for statement in op.statements:
            await statement(conn)
    return {op.run_id for op in good}


# The run columns an op's run update may set on the one-statement path (what `RunExecution` sets).
RUN_UPDATE_COLUMNS = frozenset(
    ("status", "output", "error", "finished_at", "available_at", "wake_at", "lease_owner", "lease_expires_at")
)


class PgBatchStatement:
    """A batch of plain ops as one PostgreSQL statement (see the module docstring).

    `ops` is a JSON array of {id, epoch, u}: `u` is the run update (null for a run that goes on, whose
    lease is extended). The UPDATE is the fence; journal and ledger rows (`:journal_<column>`,
    `:effects_<column>` arrays) are inserted only for the runs it returned, in their order in the
    batch (the journal's `seq` follows it).
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._statements: dict[tuple[tuple[str, ...], tuple[str, ...]], RawStatement] = {}

    def statement(self, journal_keys: tuple[str, ...], effect_keys: tuple[str, ...]) -> RawStatement:
        """The statement for this shape of batch, run through asyncpg directly (`core.rawpg`)."""
        key = (journal_keys, effect_keys)
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = RawStatement(text(self._sql(journal_keys, effect_keys)), self.dialect)
        return stmt

    @staticmethod
    def _sql(journal_keys: tuple[str, ...], effect_keys: tuple[str, ...]) -> str:
        sets = []
        for name in sorted(RUN_UPDATE_COLUMNS - {"lease_expires_at"}):
            value = from_json("o.u", RUNS.c[name])
            sets.append(f"{name} = CASE WHEN o.u ? '{name}' THEN {value} ELSE r.{name} END")
        lease = from_json("o.u", RUNS.c.lease_expires_at)
        sets.append(
            "lease_expires_at = CASE WHEN o.u IS NULL THEN CAST(:lease_until AS timestamptz) "
            f"WHEN o.u ? 'lease_expires_at' THEN {lease} ELSE r.lease_expires_at END"
        )
        sets.append("updated_at = CASE WHEN o.u IS NULL THEN r.updated_at ELSE CAST(:now AS timestamptz) END")
        parts = [
            "WITH o AS (SELECT e->>'id' AS id, CAST(e->>'epoch' AS bigint) AS epoch, "
            "CASE WHEN jsonb_typeof(e->'u') = 'object' THEN e->'u' END AS u "
            "FROM jsonb_array_elements(CAST(:ops AS jsonb)) AS t(e))",
            # Column names come from the table metadata (`table.c[key]` rejects others); values are bound.
            f"held AS (UPDATE engine_runs AS r SET {', '.join(sets)} FROM o "  # noqa: S608
            "WHERE r.id = o.id AND r.lease_epoch = o.epoch AND r.status = 'running' RETURNING r.id)",
        ]
        for name, table, keys, param, tail in (
            ("j", JOURNAL, journal_keys, "journal", ""),
            ("f", EFFECTS, effect_keys, "effects", " ON CONFLICT DO NOTHING"),
        ):
            if keys:
                held_only = "WHERE t.run_id IN (SELECT id FROM held) "
                parts.append(f"{name} AS ({insert_from_arrays(table, keys, param, held_only)}{tail} RETURNING 1)")
        return ",\n".join(parts) + "\nSELECT id FROM held"

    @staticmethod
    def shape(ops: list[CommitOp]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """The (journal, ledger) row keys if this statement can write `ops`: plain ops whose rows all
        have the same keys (they do, from `RunExecution`); None sends the batch to the transaction."""
        if not all(op.plain for op in ops):
            return None
        journal = [tuple(row) for op in ops for row in op.journal]
        effects = [tuple(row) for op in ops for row in op.effects]
        if len(set(journal)) > 1 or len(set(effects)) > 1:
            return None
        return (journal[0] if journal else ()), (effects[0] if effects else ())

    async def execute(
        self,
        conn: AsyncConnection,
        ops: list[CommitOp],
        lease_seconds: float,
        shape: tuple[tuple[str, ...], tuple[str, ...]],
    ) -> set[str]:
        now = utcnow()
        journal = [row for op in ops for row in op.journal]
        effects = [row for op in ops for row in op.effects]
        params = {
            "ops": dumps([{"id": op.run_id, "epoch": op.epoch, "u": op.run_update} for op in ops]),
            "now": now,
            "lease_until": now + timedelta(seconds=lease_seconds),
        }
        if journal:
            params.update(array_params(JOURNAL, shape[0], "journal", journal))
        if effects:
            params.update(array_params(EFFECTS, shape[1], "effects", effects))
        rows = await self.statement(*shape).fetch(conn, params)
        return {r[0] for r in rows}


class CommitBatcher(GroupCommitter[CommitOp]):
    """Group commit for one process: ops submitted within one commit's latency share a transaction.

    Up to `concurrency` transactions are in flight at once (their round trips overlap with execution
    and with each other); a run's ops are never in two of them, so a run's writes stay ordered and two
    transactions never wait on each other's row locks.
    """

    def __init__(
        self,
        db: Database,
        *,
        lease_seconds: float,
        max_batch: int = 2000,
        concurrency: int = 1,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(db, kind="journal", max_batch=max_batch, concurrency=concurrency, metrics=metrics)
        self.lease_seconds = lease_seconds
        self._busy_runs: set[str] = set()
        self._pg_batch = PgBatchStatement(db.engine.dialect) if db.dialect == "postgresql" else None
        self.commits = 0
        self.ops = 0

    async def stop(self) -> None:
        await self.close()
        for op in self._queue:
            if op.future and not op.future.done():
                op.future.set_exception(LeaseLost("worker stopping"))
        self._queue.clear()

    def enqueue(self, op: CommitOp) -> asyncio.Future[None]:
        """Queue `op`; the future resolves when it is committed (LeaseLost if its fence failed)."""
        op.future = asyncio.get_running_loop().create_future()
        self._put(op)
        return op.future

    async def submit(self, op: CommitOp) -> None:
        """Queue `op` and wait until it is committed; raises LeaseLost if its fence failed."""
        await self.enqueue(op)

    def _take(self) -> list[CommitOp]:
        """The next batch: queued ops whose run has no op in a transaction in flight."""
        batch: list[CommitOp] = []
        rest: list[CommitOp] = []
        taken: set[str] = set()
        for op in self._queue:
            if len(batch) < self.max_batch and op.run_id not in self._busy_runs and op.run_id not in taken:
                batch.append(op)
                taken.add(op.run_id)
            else:
                rest.append(op)
        self._queue = rest
        self._busy_runs |= taken
        return batch

    async def _write(self, batch: list[CommitOp]) -> bool:
        await self._commit(batch)
        return True

    def _done(self, batch: list[CommitOp]) -> None:
        self._busy_runs.difference_update(op.run_id for op in batch)

    async def _commit(self, batch: list[CommitOp]) -> None:
        try:
            held = await self._transaction(batch)
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0], exc)
                return
            log.warning("group commit of %d ops failed (%s); committing one by one", len(batch), exc)
            for op in batch:
                try:
                    held_one = await self._transaction([op])
                except Exception as one_exc:
                    _fail(op, one_exc)
                    continue
                _settle(op, held_one)
            return
        for op in batch:
            _settle(op, held)

    async def _transaction(self, batch: list[CommitOp]) -> set[str]:
        shape = self._pg_batch.shape(batch) if self._pg_batch is not None else None
        for attempt in range(3):
            try:
                if shape is not None:
                    assert self._pg_batch is not None
                    async with self._autocommit() as conn:  # one statement is atomic by itself
                        held = await self._pg_batch.execute(conn, batch, self.lease_seconds, shape)
                else:
                    async with self.db.engine.begin() as conn:
                        held = await apply_ops(conn, self.db.dialect, batch, self.lease_seconds)
                self.commits += 1
                self.ops += len(batch)
                return held
            except DBAPIError as exc:
                # deadlock / serialization failure with the reaper or a canceller: try again
                if attempt == 2 or "deadlock" not in str(exc).lower():
                    raise
        raise AssertionError("unreachable")


def _settle(op: CommitOp, held: set[str]) -> None:
    if op.future is None or op.future.done():
        return
    if op.run_id in held:
        op.future.set_result(None)
    else:
        op.future.set_exception(LeaseLost(f"run {op.run_id} lost its lease (epoch {op.epoch})"))


def _fail(op: CommitOp, exc: BaseException) -> None:
    if op.future is not None and not op.future.done():
        op.future.set_exception(exc)
