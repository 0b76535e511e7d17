"""A SQLite connection for SQLAlchemy's aiosqlite dialect that runs each statement on the calling
thread: the connections of `Database.engine` (write transactions) on a SQLite file.

aiosqlite runs every statement in a thread of its own and hands the result back through the event
loop: a statement costs two trips through the loop's queue of ready callbacks. In a busy process
(a worker executing a hundred runs, the API acknowledging webhooks) that queue is long, and a write
transaction of five statements held SQLite's one write lock for 15 ms and more while the database
did well under a millisecond of work; the other process's writer waited all that time (the embedded
system's acknowledgements took ~50 ms at a quarter of its peak rate; docs/performance.md,
profile 16).

Here `await cursor.execute(...)` runs the statement at once and returns without suspending, so a
write transaction runs from BEGIN IMMEDIATE to COMMIT without letting another task in, for the time
SQLite itself takes: with WAL and `synchronous=NORMAL` a commit does not wait for the disk, and the
WAL is checkpointed by a thread of its own (`core.sqlite_lock.WalCheckpointer`). The only waits are
for the write turn itself, and they never block the loop:

* between Crossdock's writers, `core.sqlite_lock` (a thread waits on the lock file);
* against a writer outside Crossdock (the `sqlite3` shell, say): a statement that finds the database
  locked while no transaction is open on this connection is tried again in a thread, every few
  milliseconds for up to 30 s (the usual busy timeout); a cancelled caller stops it at the next try.

Pure reads keep aiosqlite's threads (`Database.reads`): a long report never stalls the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from crossdock.core.sqlite_lock import WriterTurn

BUSY_TIMEOUT_S = 30.0  # a turn lost to a writer outside Crossdock: waited for in a thread


class InlineCursor:
    """The subset of `aiosqlite.Cursor` that SQLAlchemy's adapter uses, run inline."""

    __slots__ = ("_conn", "_cursor")

    def __init__(self, conn: InlineConnection) -> None:
        self._conn = conn
        self._cursor = conn._open().cursor()

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        args = (sql,) if parameters is None else (sql, parameters)
        try:
            self._cursor.execute(*args)
        except sqlite3.OperationalError as exc:
            if not self._conn.outside_writer(exc):
                raise
            await self._conn.retry_in_thread(self._cursor.execute, *args)
        return self

    async def executemany(self, sql: str, seq_of_parameters: Iterable[Any]) -> InlineCursor:
        self._cursor.executemany(sql, seq_of_parameters)
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _Immediate:
    """Stands in for aiosqlite's request queue (`_tx`), which SQLAlchemy's adapter feeds directly to
    set the isolation level: the request runs at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class InlineConnection:
    """The subset of `aiosqlite.Connection` that SQLAlchemy's adapter uses, run inline."""

    def __init__(self, raw: sqlite3.Connection, turn: WriterTurn) -> None:
        self.raw: sqlite3.Connection | None = raw
        self.turn = turn  # this connection's turns at writing (`core.sqlite_lock`), closed with it
        self._tx = _Immediate()

    # SQLAlchemy's adapter reads aiosqlite's private `_conn` and `_connection` (None once closed).
    @property
    def _conn(self) -> sqlite3.Connection | None:
        return self.raw

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self.raw

    @property
    def isolation_level(self) -> str | None:
        return self._open().isolation_level

    def _open(self) -> sqlite3.Connection:
        if self.raw is None:
            raise ValueError("Connection closed")
        return self.raw

    def cursor(self) -> InlineCursor:
        self._open()
        return InlineCursor(self)

    async def commit(self) -> None:
        self._open().commit()

    async def rollback(self) -> None:
        self._open().rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close (also SQLAlchemy's hard close, terminate): the lock files go too, and a turn with them."""
        raw, self.raw = self.raw, None
        self.turn.close()
        if raw is not None:
            raw.close()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._open().create_function(*args, **kw)

    def outside_writer(self, exc: sqlite3.OperationalError) -> bool:
        """The statement found the database locked by a writer that does not take Crossdock's turns,
        before this connection holds any lock of its own (so waiting cannot deadlock)."""
        return _locked(exc) and not self._open().in_transaction

    async def retry_in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` again in a thread until the database is no longer locked (or 30 s), so that
        the loop never sleeps in SQLite's busy handler. A cancelled caller stops the retries and
        waits for the try in progress (busy timeout 0: it returns at once), so the connection is
        not closed under a statement."""
        stop = threading.Event()

        def retrying() -> Any:
            deadline = time.monotonic() + BUSY_TIMEOUT_S
            delay = 0.001
            while True:
                try:
                    return fn(*args)
                except sqlite3.OperationalError as exc:
                    if not _locked(exc) or stop.is_set() or time.monotonic() > deadline:
                        raise
                stop.wait(delay)
                delay = min(delay * 2, 0.02)

        attempt = asyncio.get_running_loop().run_in_executor(None, retrying)
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.wait([attempt])
            raise


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc)  # "database is locked": SQLITE_BUSY


def creator(path: str) -> Callable[[], Any]:
    """`create_async_engine(async_creator=...)` for a file database: no busy wait on the loop, and
    the connection's own writer turn (`core.sqlite_lock`)."""

    async def connect() -> InlineConnection:
        raw = sqlite3.connect(path, timeout=0, check_same_thread=False)
        try:
            return InlineConnection(raw, WriterTurn(path))
        except BaseException:
            raw.close()
            raise

    return connect
