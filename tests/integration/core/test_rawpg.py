"""`core.rawpg`: a statement compiled once by SQLAlchemy and run through asyncpg, with SQLAlchemy's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from crossdock.core.db import make_engine
from crossdock.core.rawpg import RawStatement


@pytest.fixture
async def conn(backend: str, database_url: str) -> AsyncIterator[AsyncConnection]:
    if backend != "postgres":
        pytest.skip("asyncpg only")
    engine = make_engine(database_url)
    try:
        async with engine.connect() as c:
            await c.execution_options(isolation_level="AUTOCOMMIT")
            yield c
    finally:
        await engine.dispose()


async def test_parameters_bind_by_name_whatever_their_order(conn: AsyncConnection) -> None:
    stmt = RawStatement(
        text("SELECT CAST(:b AS int) - CAST(:a AS int), CAST(:doc AS jsonb)->'k', CAST(:at AS timestamptz)"),
        conn.dialect,
    )
    assert stmt.names == ("b", "a", "doc", "at")
    at = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
    [row] = await stmt.fetch(conn, {"a": 2, "b": 10, "doc": '{"k": [1, "x"]}', "at": at})
    # jsonb comes back decoded (the dialect's codec), as `execute` would give it
    assert (row[0], row[1], row[2]) == (8, [1, "x"], at)


async def test_a_refused_statement_raises_dbapierror_and_leaves_the_connection_usable(conn: AsyncConnection) -> None:
    stmt = RawStatement(text("SELECT 1 / CAST(:n AS int)"), conn.dialect)
    with pytest.raises(DBAPIError) as raised:
        await stmt.fetch(conn, {"n": 0})
    assert "division by zero" in str(raised.value) and not raised.value.connection_invalidated
    assert [r[0] for r in await stmt.fetch(conn, {"n": 1})] == [1]


async def test_a_lost_connection_is_reported_invalidated(conn: AsyncConnection) -> None:
    pid = (await RawStatement(text("SELECT pg_backend_pid()"), conn.dialect).fetch(conn, {}))[0][0]
    engine = make_engine(conn.engine.url.render_as_string(hide_password=False))
    try:
        async with engine.connect() as admin:
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await engine.dispose()
    with pytest.raises(DBAPIError) as raised:
        await RawStatement(text("SELECT 1"), conn.dialect).fetch(conn, {})
    assert raised.value.connection_invalidated
    await conn.invalidate()


async def test_a_missing_parameter_is_named(conn: AsyncConnection) -> None:
    stmt = RawStatement(text("SELECT CAST(:a AS int) + CAST(:b AS int)"), conn.dialect)
    with pytest.raises(KeyError, match="missing bind parameter"):
        await stmt.fetch(conn, {"a": 1})


def test_only_asyncpg_is_supported() -> None:
    with pytest.raises(ValueError, match="postgresql\\+asyncpg"):
        RawStatement(text("SELECT 1"), sqlite.dialect())
