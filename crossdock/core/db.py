"""Database access: the declarative base, portable column types, engines and scoped sessions.

Crossdock runs on SQLite (embedded default, WAL) and PostgreSQL through SQLAlchemy 2's asyncio
API. Control-plane code uses scoped ORM sessions (`Database.session`); the engine's hot path uses
Core statements on `Database.engine` directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime, MetaData, event, make_url
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from crossdock.core import sqlite_inline, sqlite_lock
from crossdock.core.clock import as_utc

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class JSONText(JSON):
    """JSON kept as text (`json` on PostgreSQL, not `jsonb`), for documents written once and read
    back whole, never queried inside the database (a run's input): no parse into `jsonb` on the way
    in, no printing on the way out (migration 0009). A subclass so the bulk writes can tell it apart."""

    cache_ok = True


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always returned timezone-aware, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _json_loads(value: Any) -> Any:
    # SQLite gives a JSON column NUMERIC affinity, so a stored scalar like `1` comes back as a number.
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


READ_ONLY = "crossdock_read_only"  # execution option: this connection only reads
SQLITE_LOCK_TIMEOUT = 30.0  # seconds a SQLite writer waits for its turn, as `busy_timeout`


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    server_settings: Mapping[str, str] | None = None,
    sqlite_reads: bool = False,
) -> AsyncEngine:
    """Create an async engine with the settings each database needs.

    `server_settings`: PostgreSQL run-time settings for every connection of this engine (asyncpg
    sends them at connect; no round trip per statement). Ignored on SQLite.

    On a SQLite file the engine's statements run inline on the event loop (`core.sqlite_inline`), a
    write transaction in one go; `sqlite_reads=True` makes the engine for pure reads instead, on
    aiosqlite's threads."""
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        inline = path if not sqlite_reads else None
        engine = create_async_engine(
            url,
            echo=echo,
            json_serializer=_json_dumps,
            json_deserializer=_json_loads,
            connect_args={} if inline else {"timeout": 30},
            async_creator=sqlite_inline.creator(inline) if inline else None,
            poolclass=NullPool if make_url(url).database == ":memory:" else None,
        )
        _configure_sqlite(engine, inline, reads_only=sqlite_reads)
        return engine
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per checkout (measured ~12% of the intake's CPU). A dead
        # connection fails its statement once, SQLAlchemy (or `core.rawpg`) invalidates the pool and reconnects.
        pool_recycle=1800,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={"server_settings": dict(server_settings)} if server_settings else {},
    )


def _configure_sqlite(engine: AsyncEngine, inline: str | None, *, reads_only: bool) -> None:
    """Pragmas for every connection. Writers begin with `BEGIN IMMEDIATE`, on the inline engine of
    the file `inline` (`make_engine`) after taking their turn through `core.sqlite_lock`; pure reads
    (`READ_ONLY`, or every connection of a `reads_only` engine) begin with a deferred `BEGIN`."""
    sync_engine = engine.sync_engine
    checkpointer = sqlite_lock.WalCheckpointer(inline) if inline else None

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
        cur.execute("PRAGMA foreign_keys=ON")
        if inline:
            # No busy wait on the event loop (sqlite_inline waits for an outside writer in a thread);
            # the WAL checkpointer thread copies the WAL back, outside any writer's turn (sqlite_lock).
            cur.execute("PRAGMA busy_timeout=0")
            cur.execute("PRAGMA wal_autocheckpoint=0")
            if checkpointer is not None:
                checkpointer.start()  # once per connection, not per transaction; again after a dispose
        else:
            cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    # pysqlite's own transaction handling is off (isolation_level=None); we emit BEGIN IMMEDIATE so
    # that writers queue on the lock instead of failing with "database is locked" on upgrade. Pure
    # reads (`Database.reads`) begin deferred: in WAL mode they read a snapshot and never wait for
    # the writer lock. (They used to: SQLite's busy handler retries on a backoff, not in arrival
    # order, so a read could lose the lock to a steady stream of group commits for 0.2 s and more.)
    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if reads_only or conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
            return
        turn = _turn(conn.connection)
        if turn is not None:
            turn.acquire(SQLITE_LOCK_TIMEOUT)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if turn is not None:
                turn.release()
            raise

    if not inline:
        return
    # The turn ends after COMMIT or ROLLBACK has run (SQLAlchemy's commit and rollback events come
    # before them): the dialect's own methods are wrapped, for this engine's dialect only.
    dialect = sync_engine.dialect
    for name in ("do_commit", "do_rollback"):
        setattr(dialect, name, _then_release(getattr(dialect, name)))

    if checkpointer is not None:

        @event.listens_for(sync_engine, "engine_disposed")
        def _on_dispose(_engine: Any) -> None:
            checkpointer.stop()


def _then_release(method: Any) -> Any:
    def wrapped(dbapi_connection: Any) -> None:
        try:
            method(dbapi_connection)
        finally:
            # Also when COMMIT or ROLLBACK raised: SQLite's own lock still guards a transaction left
            # open, and the next writer then waits for it in a thread (`core.sqlite_inline`).
            turn = _turn(dbapi_connection)
            if turn is not None:
                turn.release()

    return wrapped


def _turn(connection: Any) -> sqlite_lock.WriterTurn | None:
    """The writer turn of a pooled connection (SQLAlchemy's proxy, or its adapted DBAPI connection:
    both name the driver's connection, `core.sqlite_inline.InlineConnection`)."""
    return getattr(getattr(connection, "driver_connection", None), "turn", None)


def sqlite_file(url: str) -> str | None:
    """The path of the plain SQLite file a URL names (its query string aside); None for PostgreSQL,
    an in-memory database or a `uri=true` URL (those keep aiosqlite's own connections)."""
    if not url.startswith("sqlite"):
        return None
    parsed = make_url(url)
    path = parsed.database
    if not path or path == ":memory:" or parsed.query.get("uri") or path.startswith("file:"):
        return None
    return path


class Database:
    """Engines and session factories for one database URL; one per process, made by bootstrap."""

    def __init__(
        self, url: str, *, pool_size: int = 10, echo: bool = False, server_settings: Mapping[str, str] | None = None
    ) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size, echo=echo, server_settings=server_settings)
        # For connections that only read: on SQLite they take no lock (see above); on a SQLite file
        # they have an engine of their own, on aiosqlite's threads, so a long read never holds up
        # the event loop the way the inline writes do (`core.sqlite_inline`).
        self._read_engine = make_engine(url, echo=echo, sqlite_reads=True) if sqlite_file(url) else None
        self.reads = (self._read_engine or self.engine).execution_options(**{READ_ONLY: True})
        # For work that is one statement (a sweep, a poll): on PostgreSQL in autocommit, so it costs
        # one round trip instead of three (BEGIN, the statement, COMMIT or ROLLBACK); on SQLite the
        # same as `reads` and `engine` (a deferred BEGIN for reads, BEGIN IMMEDIATE for writes).
        if self.engine.dialect.name == "postgresql":
            autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            self.single_reads, self.single_writes = autocommit, autocommit
        else:
            self.single_reads, self.single_writes = self.reads, self.engine
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, class_=AsyncSession)
        # Connections the engine's group commits may keep checked out between writes, all of them
        # together (`engine.batching`): half the pool, so the rest of the process (claims, lease
        # heartbeats, API reads) always finds one however many worker loops it runs.
        self.held_slots = max(1, pool_size // 2)

    @property
    def read_engine(self) -> AsyncEngine:
        """The engine behind `reads` and `single_reads`: its own on a SQLite file, else `engine`."""
        return self._read_engine or self.engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self, scope: Any) -> AsyncIterator[AsyncSession]:
        """A unit of work bound to a tenant scope; commits on success, rolls back on error.

        Every ORM query on a tenant-owned table in this session is filtered to `scope`, and every
        row it writes must lie inside it (see `crossdock.core.tenancy`).
        """
        async with self.sessions() as session:
            session.sync_session.info["scope"] = scope
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._read_engine is not None:
            await self._read_engine.dispose()
