"""Shared fixtures: every database test runs on SQLite and on PostgreSQL, each run in a fresh database.

PostgreSQL comes from CROSSDOCK_TEST_POSTGRES_URL (default: postgresql://postgres@127.0.0.1:5432/test).
If it cannot be reached, its half is skipped loudly, unless CROSSDOCK_REQUIRE_POSTGRES=1, which fails the run.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, text

import crossdock.models  # noqa: F401
from crossdock.bootstrap import Container, build_container
from crossdock.core.db import Base, make_engine
from crossdock.core.migrate import upgrade
from crossdock.core.secrets import generate_key
from crossdock.core.settings import Settings
from tests.factories import World, make_world

PG_ADMIN_URL = os.environ.get("CROSSDOCK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("CROSSDOCK_REQUIRE_POSTGRES") == "1"
_pg_state: dict[str, str | None] = {"error": None}


def _asyncpg_url(url: str, database: str | None = None) -> str:
    base = "postgresql+asyncpg://" + url.split("://", 1)[1]
    if database:
        base = base.rsplit("/", 1)[0] + "/" + database
    return base


async def _pg_admin(sql: str) -> None:
    engine = make_engine(_asyncpg_url(PG_ADMIN_URL))
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def _pg_reachable() -> str | None:
    try:
        asyncio.run(asyncio.wait_for(_pg_admin("SELECT 1"), timeout=5))
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def pytest_sessionstart(session: pytest.Session) -> None:
    _pg_state["error"] = _pg_reachable()
    if _pg_state["error"] and REQUIRE_PG:
        pytest.exit(f"CROSSDOCK_REQUIRE_POSTGRES=1 but PostgreSQL is unreachable: {_pg_state['error']}", returncode=3)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_state["error"]:
        terminalreporter.write_sep("!", "PostgreSQL half SKIPPED", red=True, bold=True)
        terminalreporter.write_line(f"PostgreSQL at {PG_ADMIN_URL} was unreachable: {_pg_state['error']}")
        terminalreporter.write_line("Set CROSSDOCK_TEST_POSTGRES_URL, or CROSSDOCK_REQUIRE_POSTGRES=1 to fail instead.")


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and _pg_state["error"]:
        pytest.skip(f"PostgreSQL unreachable ({_pg_state['error']}); PostgreSQL half skipped")
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database for this test run, dropped at the end."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'crossdock.db'}"
        asyncio.run(_migrate(url))
        yield url
        return
    name = f"crossdock_t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    url = _asyncpg_url(PG_ADMIN_URL, name)
    asyncio.run(_migrate(url))
    yield url
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _migrate(url: str) -> None:
    engine = make_engine(url)
    await upgrade(engine)
    await engine.dispose()


async def wipe(container: Container) -> None:
    """Delete every row, so each test starts from an empty (but migrated) database."""
    async with container.db.engine.begin() as conn:
        existing = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in existing]
        if container.db.dialect == "postgresql":
            await conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
        else:
            for t in tables:
                await conn.execute(text(f'DELETE FROM "{t}"'))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    home = tmp_path / "home"
    home.mkdir()
    (home / "master.key").write_text(generate_key() + "\n")
    return Settings(
        database_url=database_url,
        home=tmp_path / "home",
        log_json=False,
        master_key_file=tmp_path / "home" / "master.key",
    )


@pytest.fixture
async def container(settings: Settings) -> AsyncIterator[Container]:
    container = build_container(settings)
    await wipe(container)
    try:
        yield container
    finally:
        await container.close()


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """The real app over ASGI against the real (SQLite or PostgreSQL) database."""
    from crossdock.web.app import create_app

    app = create_app(container)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crossdock.test") as c:
        yield c


@pytest.fixture
async def world(container: Container) -> World:
    """Two partners, three merchants and one token per interesting caller (see tests/factories.py)."""
    return await make_world(container)
