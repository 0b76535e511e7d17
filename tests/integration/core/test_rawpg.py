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
def pg_url(backend: str, database_url: str) -> str:
    if backend != "postgres":
        pytest.skip("asyncpg only")
    return database_url


@pytest.fixture
async def conn(pg_url: str) -> AsyncIterator[AsyncConnection]:
    engine = make_engine(pg_url)
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


async def test_a_lost_connection_is_reported_invalidated_and_the_pool_replaces_its_others(pg_url: str) -> None:
    engine = make_engine(pg_url)
    pid_of = RawStatement(text("SELECT pg_backend_pid()"), engine.dialect)
    try:
        async with engine.connect() as conn:
            idle = await engine.connect()  # a second connection, left idle in the pool
            idle_pid = (await pid_of.fetch(idle, {}))[0][0]
            await idle.close()
            pid = (await pid_of.fetch(conn, {}))[0][0]
            assert pid != idle_pid
            admin = make_engine(pg_url)
            try:
                async with admin.connect() as a:  # a restart: both backends end
                    for p in (pid, idle_pid):
                        await a.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": p})
            finally:
                await admin.dispose()
            with pytest.raises(DBAPIError) as raised:
                await pid_of.fetch(conn, {})
            assert raised.value.connection_invalidated
            await conn.invalidate()
        # The pool was told: the idle connection is replaced at checkout instead of failing once.
        async with engine.connect() as again:
            assert (await again.execute(text("SELECT pg_backend_pid()"))).scalar_one() not in (pid, idle_pid)
    finally:
        await engine.dispose()


async def test_inside_a_transaction_sqlalchemy_began_commit_keeps_and_rollback_undoes(pg_url: str) -> None:
    engine = make_engine(pg_url)
    put = RawStatement(text("INSERT INTO rawpg_probe (v) VALUES (CAST(:v AS int)) RETURNING v"), engine.dialect)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS rawpg_probe (v int)"))
            await conn.execute(text("TRUNCATE rawpg_probe"))
        async with engine.begin() as conn:
            await conn.execute(text("SELECT 1"))  # SQLAlchemy begins the transaction here
            assert [r[0] for r in await put.fetch(conn, {"v": 1}, in_transaction=True)] == [1]
        with pytest.raises(ZeroDivisionError):
            async with engine.begin() as conn:
                await conn.execute(text("SELECT 1"))
                await put.fetch(conn, {"v": 2}, in_transaction=True)
                raise ZeroDivisionError  # the block fails: SQLAlchemy rolls back
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT array_agg(v) FROM rawpg_probe"))).scalar_one() == [1]
            await conn.execute(text("DROP TABLE rawpg_probe"))
            await conn.commit()
        async with engine.begin() as conn:  # nothing executed through SQLAlchemy yet: no transaction
            with pytest.raises(RuntimeError, match="outside a transaction"):
                await put.fetch(conn, {"v": 3}, in_transaction=True)
    finally:
        await engine.dispose()


async def test_a_naive_datetime_is_refused(conn: AsyncConnection) -> None:
    stmt = RawStatement(text("SELECT CAST(:at AS timestamptz)"), conn.dialect)
    with pytest.raises(ValueError, match="naive datetime"):
        await stmt.fetch(conn, {"at": datetime(2026, 11, 24, 12, 30)})


async def test_a_missing_parameter_is_named(conn: AsyncConnection) -> None:
    stmt = RawStatement(text("SELECT CAST(:a AS int) + CAST(:b AS int)"), conn.dialect)
    with pytest.raises(KeyError, match="missing bind parameter"):
        await stmt.fetch(conn, {"a": 1})


def test_only_asyncpg_is_supported() -> None:
    with pytest.raises(ValueError, match="postgresql\\+asyncpg"):
        RawStatement(text("SELECT 1"), sqlite.dialect())
