"""The machinery shared by the engine's two group commits: webhook intake and the step journal.

Callers queue items and await their futures; one loop hands everything queued to a write, keeping up
to `concurrency` writes in flight (PostgreSQL; SQLite has a single writer, so one), and records each
write's size and duration (`crossdock_group_commit_*{kind}`). Subclasses say how a batch is taken
from the queue (`_take`), written and settled (`_write`), and what to release after it (`_done`).

On PostgreSQL most writes are one autocommitted statement. `_autocommit()` keeps the connections for
them between writes (one per write in flight): checking a connection out of SQLAlchemy's pool and
setting its isolation level cost ~130 µs of CPU per write, against ~30 µs for the statement itself
(docs/performance.md, profile 7), and under a steady trickle of webhooks a write carries only one
to three of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from crossdock.core.db import Database
from crossdock.core.metrics import Metrics, group_commit_observer

T = TypeVar("T")

log = logging.getLogger("crossdock.engine.batching")

HELD_RECYCLE_SECONDS = 1800.0  # the pool's `pool_recycle` (core.db.make_engine)


class GroupCommitter(ABC, Generic[T]):
    def __init__(self, db: Database, *, kind: str, max_batch: int, concurrency: int, metrics: Metrics | None) -> None:
        self.db = db
        self.kind = kind
        self.max_batch = max_batch
        self.concurrency = 1 if db.dialect == "sqlite" else max(1, concurrency)
        self._observe = group_commit_observer(metrics, kind)
        self._queue: list[T] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._held: list[tuple[AsyncConnection, float]] = []  # kept between writes, with when opened
        self._held_loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the loop (again after `close`, possibly on another event loop)."""
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name=f"crossdock-{self.kind}-commit")

    def _put(self, item: T) -> None:
        self.start()
        self._queue.append(item)
        self._wakeup.set()

    async def close(self) -> None:
        """Stop taking batches and let the writes in flight finish; what is still queued stays queued."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        held, self._held = self._held, []
        for conn, _opened in held:
            await self._drop(conn)

    @contextlib.asynccontextmanager
    async def _autocommit(self) -> AsyncIterator[AsyncConnection]:
        """An autocommit connection for one single-statement write, kept for a later write (see the
        module docstring) while the process's `Database.held_slots` last; past them it goes back to the
        pool after the write. A connection whose write raised is discarded (not even returned to the
        pool): the next write opens a fresh one."""
        loop = asyncio.get_running_loop()
        if self._held_loop is not loop:  # connections belong to the event loop that opened them
            held, self._held, self._held_loop = self._held, [], loop
            for old, _opened in held:  # their pool slots come back now, not at a cyclic collection
                _abandon(old)
                self.db.held_slots += 1
        conn: AsyncConnection | None = None
        opened = 0.0
        while conn is None and self._held:
            conn, opened = self._held.pop()
            if not _alive(conn):  # the server ended it while it was idle (restart, failover, timeout)
                await self._drop(conn, discard=True)
                conn = None
            elif time.monotonic() - opened > HELD_RECYCLE_SECONDS:
                await self._drop(conn)  # as the pool recycles its connections (`core.db`)
                conn = None
        keep = True
        if conn is None:
            conn, opened = await self.db.engine.connect(), time.monotonic()
            try:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            except BaseException:
                await _close_quietly(conn, discard=True)
                raise
            keep = self.db.held_slots > 0
            if keep:
                self.db.held_slots -= 1
        try:
            yield conn
        except BaseException as exc:
            await _close_quietly(conn, discard=True)
            if keep:
                self.db.held_slots += 1
            if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                # A disconnect (server restart, failover): SQLAlchemy invalidates the pool's idle
                # connections but never sees the held ones, which most likely died with this one:
                # drop them, rather than fail one more write on each.
                held, self._held = self._held, []
                for other, _opened in held:
                    await self._drop(other, discard=True)
            raise
        if keep:
            self._held.append((conn, opened))
        else:
            await _close_quietly(conn)

    async def _drop(self, conn: AsyncConnection, *, discard: bool = False) -> None:
        """Stop holding `conn` (taken off `_held` by the caller) and free its slot."""
        self.db.held_slots += 1
        await _close_quietly(conn, discard=discard)

    def _take(self) -> list[T]:
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        return batch

    @abstractmethod
    async def _write(self, batch: list[T]) -> bool:
        """Write `batch` and settle its items' futures (never raises); True when it was committed."""

    def _done(self, batch: list[T]) -> None:
        """Called after each write, committed or not."""

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(0)  # let tasks that are ready this tick join the batch
            while self._queue and len(self._inflight) < self.concurrency:
                batch = self._take()
                if not batch:
                    break  # what is queued waits for a write in flight (see `_take`)
                self._inflight.add(asyncio.create_task(self._run(batch)))

    async def _run(self, batch: list[T]) -> None:
        started = time.perf_counter()
        try:
            if await self._write(batch):
                self._observe(len(batch), time.perf_counter() - started)
        finally:
            self._done(batch)
            self._inflight.discard(asyncio.current_task())
            if self._queue:
                self._wakeup.set()


async def _close_quietly(conn: AsyncConnection, *, discard: bool = False) -> None:
    """Give a held connection back to the pool, or with `discard` (its write failed, so it may be
    broken in a way the driver did not report as a disconnect) close it for good."""
    try:
        if discard:
            await conn.invalidate()
        await conn.close()
    except Exception:
        log.debug("closing a held connection failed", exc_info=True)


def _alive(conn: AsyncConnection) -> bool:
    """False when the driver already knows the connection is gone (no round trip: asyncpg notices the
    server closing the socket, e.g. on a restart, as soon as it happens)."""
    if conn.closed or conn.invalidated:
        return False
    try:
        driver = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    except Exception:
        return False
    is_closed = getattr(driver, "is_closed", None)
    return not (callable(is_closed) and is_closed())


def _abandon(conn: AsyncConnection) -> None:
    """A held connection of an event loop that is gone (the batcher was not closed on it): it cannot be
    closed from this loop; invalidate it synchronously so that the pool counts its slot free again."""
    try:
        if conn.sync_connection is not None:
            conn.sync_connection.invalidate()
    except Exception:
        log.debug("abandoning a held connection failed", exc_info=True)
