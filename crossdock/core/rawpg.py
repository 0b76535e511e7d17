"""One PostgreSQL statement straight through asyncpg, for the engine's hottest single-statement writes.

`AsyncConnection.execute` costs ~100-120 µs of CPU per statement on top of the driver (the execution
context, the result object, the asyncpg adapter's greenlet hop), against ~60 µs for the whole asyncpg
call of a webhook intake batch; under a trickle of webhooks a batch carries one to three of them, so
that overhead was a third of the intake's CPU per order (docs/performance.md, profile 11).

A `RawStatement` is a SQLAlchemy `text()` statement compiled once for the connection's dialect
(`$1, $2, ...` in the order of its bind parameters); `fetch` runs it on the asyncpg connection under
an `AsyncConnection` the caller already holds, and returns asyncpg records. Bind parameters get no
SQLAlchemy type processing: pass what asyncpg takes for the parameter's type (timezone-aware
datetimes, JSON documents as `str` for `CAST(... AS jsonb)`; SQLAlchemy's asyncpg dialect installs
the jsonb codec that takes text and gives back decoded values). Driver errors are raised as
SQLAlchemy's `DBAPIError` (with `connection_invalidated` when the connection is gone, and then the
pool told to replace its older connections, as SQLAlchemy does on a disconnect), so callers keep one
error path. Not covered: SQLAlchemy's `handle_error` events and its `DBAPIError` subclasses
(`IntegrityError`, ...); the SQLSTATE is on the original error (`exc.orig.sqlstate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import asyncpg
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement


class RawStatement:
    """A compiled statement and the names of its parameters in positional order."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        if dialect.name != "postgresql" or dialect.driver != "asyncpg":
            raise ValueError(f"RawStatement needs postgresql+asyncpg, not {dialect.name}+{dialect.driver}")
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())

    async def fetch(
        self, conn: AsyncConnection, params: Mapping[str, Any], *, in_transaction: bool = False
    ) -> Sequence[asyncpg.Record]:
        """Run the statement on `conn`'s asyncpg connection; raises `DBAPIError` as `execute` would.

        `in_transaction`: the caller relies on a transaction SQLAlchemy has begun on `conn` (by
        executing a statement in `engine.begin()`); refuse to run the statement in autocommit instead."""
        args = []
        for name in self.names:
            if name not in params:
                raise KeyError(f"missing bind parameter {name!r}")
            value = params[name]
            if isinstance(value, datetime) and value.tzinfo is None:
                # asyncpg would take a naive datetime as local time; SQLAlchemy's UTCDateTime as UTC.
                raise ValueError(f"bind parameter {name!r} is a naive datetime; pass a timezone-aware one")
            args.append(value)
        sync = conn.sync_connection
        if sync is not None and not sync.closed and not sync.invalidated:
            fairy = sync.connection  # established: read it here, without `get_raw_connection`'s greenlet hop
        else:
            fairy = await conn.get_raw_connection()  # SQLAlchemy reconnects or raises, as `execute` would
        driver = cast(asyncpg.Connection, fairy.driver_connection)
        if in_transaction and not driver.is_in_transaction():
            raise RuntimeError("RawStatement.fetch(in_transaction=True) outside a transaction")
        try:
            return await driver.fetch(self.sql, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError) as exc:
            # A refused statement leaves the connection usable; a lost one (closed socket, SQLSTATE
            # class 08, a network error; not a timeout) does not. As SQLAlchemy does on a disconnect,
            # mark every connection the pool opened until now for replacement at its next checkout:
            # after a restart or failover they are all dead, and the pool has no pre-ping.
            gone = driver.is_closed() or (
                isinstance(exc, asyncpg.PostgresConnectionError | OSError) and not isinstance(exc, TimeoutError)
            )
            if gone:
                conn.sync_engine.pool._invalidate(fairy, exc, _checkin=False)
            raise DBAPIError(self.sql, None, exc, connection_invalidated=gone) from exc
