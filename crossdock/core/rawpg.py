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
SQLAlchemy's `DBAPIError` (with `connection_invalidated` when the connection is gone), as
`execute` raises them, so callers keep one error path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

    async def fetch(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Sequence[asyncpg.Record]:
        """Run the statement on `conn`'s asyncpg connection; raises `DBAPIError` as `execute` would."""
        missing = [n for n in self.names if n not in params]
        if missing:
            raise KeyError(f"missing bind parameter(s): {', '.join(missing)}")
        args = [params[n] for n in self.names]
        driver = cast(asyncpg.Connection, (await conn.get_raw_connection()).driver_connection)
        try:
            return await driver.fetch(self.sql, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            # A refused statement leaves the connection usable; a lost one (closed socket, SQLSTATE
            # class 08, the server shutting the backend down) does not.
            gone = driver.is_closed() or isinstance(exc, asyncpg.PostgresConnectionError | OSError)
            raise DBAPIError(self.sql, None, exc, connection_invalidated=gone) from exc
