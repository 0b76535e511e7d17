"""SQLite writes on a file: inline transactions, the writer turn across pools, the WAL checkpointer.

Two `Database` objects on one file stand for two processes (the API and a worker): each has its own
pool and its own open lock files, which the kernel tells apart exactly as it would two processes'.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from crossdock.core import db as dbmod
from crossdock.core.db import Database, sqlite_file
from crossdock.core.sqlite_lock import LOCK_SUFFIX
from tests.integration.engine.conftest import wait_until


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[Database, Database, Path]]:
    path = tmp_path / "turns.db"
    a, b = Database(f"sqlite+aiosqlite:///{path}"), Database(f"sqlite+aiosqlite:///{path}")
    async with a.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (n INTEGER, who TEXT)"))
    try:
        yield a, b, path
    finally:
        await a.dispose()
        await b.dispose()


async def _insert(db: Database, n: int, who: str) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("INSERT INTO t VALUES (:n, :who)"), {"n": n, "who": who})


async def _rows(db: Database) -> list[tuple[int, str]]:
    async with db.reads.connect() as conn:
        return [(r[0], r[1]) for r in await conn.execute(text("SELECT n, who FROM t ORDER BY rowid"))]


async def _ticker(ticks: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        ticks.append(time.monotonic())
        await asyncio.sleep(0.005)


async def test_a_write_transaction_runs_without_letting_other_tasks_in(two: tuple[Database, Database, Path]) -> None:
    a, _b, _path = two
    order: list[str] = []

    async def other() -> None:
        order.append("other task")

    async with a.engine.begin() as conn:
        task = asyncio.create_task(other())  # ready to run at the next await that suspends
        for n in range(5):
            await conn.execute(text("INSERT INTO t VALUES (:n, 'a')"), {"n": n})
            order.append(f"statement {n}")
    await task
    # With statements on aiosqlite's thread, the other task ran after the first statement.
    assert order == [f"statement {n}" for n in range(5)] + ["other task"]


async def test_a_writer_waits_for_the_other_pools_turn_without_blocking_the_loop(
    two: tuple[Database, Database, Path],
) -> None:
    a, b, _path = two
    ticks: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(ticks, stop))
    async with a.engine.begin() as conn:
        await conn.execute(text("INSERT INTO t VALUES (1, 'a')"))
        waiting = asyncio.create_task(_insert(b, 2, "b"))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # b waits for a's turn to end ...
        assert len(ticks) >= 20  # ... in a thread: the loop kept running meanwhile
        released = time.monotonic()
    await asyncio.wait_for(waiting, timeout=5)
    handed_over = time.monotonic() - released
    stop.set()
    await ticker
    assert await _rows(a) == [(1, "a"), (2, "b")]
    # A bound for a loaded machine, not a proof of the kernel's wake-up (the ordering test below shows
    # that the lock file, not SQLite's busy handler, decides who writes next).
    assert handed_over < 0.5


async def test_a_waiting_writer_goes_before_one_that_comes_after_it(two: tuple[Database, Database, Path]) -> None:
    a, b, _path = two
    async with a.engine.begin() as conn:
        await conn.execute(text("INSERT INTO t VALUES (1, 'a')"))
        waiting = asyncio.create_task(_insert(b, 2, "b"))
        await asyncio.sleep(0.1)  # b is waiting for the turn
    # a lets go and at once wants the turn again, before the kernel has even woken b's thread: a
    # free-for-all would give it to a again (b waits a turn more, and on a busy worker another).
    await asyncio.wait_for(_insert(a, 3, "a"), timeout=5)
    await asyncio.wait_for(waiting, timeout=5)
    assert await _rows(a) == [(1, "a"), (2, "b"), (3, "a")]


async def test_a_writer_that_gets_no_turn_fails_clearly_and_loses_no_later_turn(
    two: tuple[Database, Database, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, _path = two
    monkeypatch.setattr(dbmod, "SQLITE_LOCK_TIMEOUT", 0.2)
    async with a.engine.begin() as conn:
        await conn.execute(text("INSERT INTO t VALUES (1, 'a')"))
        with pytest.raises(OperationalError, match=r"no write turn in 0\.2 s"):
            await _insert(b, 2, "b")
    # The thread that was still waiting for b's old lock file must not hold a turn now.
    await asyncio.wait_for(_insert(a, 3, "a"), timeout=5)
    await asyncio.wait_for(_insert(b, 4, "b"), timeout=5)
    assert await _rows(a) == [(1, "a"), (3, "a"), (4, "b")]


async def test_a_cancelled_waiter_leaves_no_lock_behind(two: tuple[Database, Database, Path]) -> None:
    a, b, _path = two
    async with a.engine.begin() as conn:
        await conn.execute(text("INSERT INTO t VALUES (1, 'a')"))
        waiting = asyncio.create_task(_insert(b, 2, "b"))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    await asyncio.sleep(0.05)  # the abandoned thread gets the old file's lock, which closes with it
    await asyncio.wait_for(_insert(a, 3, "a"), timeout=5)
    await asyncio.wait_for(_insert(b, 4, "b"), timeout=5)
    assert await _rows(b) == [(1, "a"), (3, "a"), (4, "b")]


async def test_a_writer_outside_crossdock_is_waited_for_in_a_thread(two: tuple[Database, Database, Path]) -> None:
    a, _b, path = two
    outside = sqlite3.connect(path, isolation_level=None)  # the sqlite3 shell, say: no lock file
    ticks: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(ticks, stop))
    try:
        outside.execute("BEGIN IMMEDIATE")
        outside.execute("INSERT INTO t VALUES (1, 'outside')")
        waiting = asyncio.create_task(_insert(a, 2, "a"))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        assert len(ticks) >= 20  # SQLite's busy handler sleeps in a thread, not on the loop
        outside.execute("COMMIT")
        await asyncio.wait_for(waiting, timeout=5)
    finally:
        stop.set()
        await ticker
        outside.close()
    assert await _rows(a) == [(1, "outside"), (2, "a")]


async def test_the_wal_is_checkpointed_by_the_background_thread(two: tuple[Database, Database, Path]) -> None:
    a, _b, path = two
    async with a.engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one() == 0
    for n in range(20):
        await _insert(a, n, "a")

    def in_database_file() -> int:
        # `immutable=1` reads the database file alone, not the WAL: only checkpointed rows are there.
        try:
            with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as raw:
                if raw.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'").fetchone()[0] == 0:
                    return 0  # not even the CREATE TABLE is there yet
                return int(raw.execute("SELECT count(*) FROM t").fetchone()[0])
        except sqlite3.DatabaseError:
            return -1  # read while the checkpointer was writing the file: look again

    async def checkpointed() -> bool:
        return in_database_file() == 20

    await wait_until(checkpointed, timeout=10, interval=0.1)
    assert (path.parent / (path.name + LOCK_SUFFIX)).is_file()


@pytest.mark.filterwarnings("ignore:The garbage collector is trying to clean up non-checked-in connection")
async def test_a_connection_dropped_without_closing_gives_its_turn_back(
    two: tuple[Database, Database, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, _path = two
    monkeypatch.setattr(dbmod, "SQLITE_LOCK_TIMEOUT", 2.0)
    conn = await a.engine.connect()
    await conn.begin()
    await conn.execute(text("INSERT INTO t VALUES (1, 'dropped')"))
    del conn  # neither committed nor closed: the pool's finalizer cleans it up at collection
    gc.collect()
    # Its turn went with its lock files; before, the turn outlived it and every writer timed out.
    await asyncio.wait_for(_insert(b, 2, "b"), timeout=5)
    await asyncio.wait_for(_insert(a, 3, "a"), timeout=5)
    assert await _rows(b) == [(2, "b"), (3, "a")]


def test_only_a_plain_file_url_gets_inline_writes() -> None:
    assert sqlite_file("sqlite+aiosqlite:////srv/crossdock/crossdock.db") == "/srv/crossdock/crossdock.db"
    assert sqlite_file("sqlite+aiosqlite:////srv/x.db?timeout=5") == "/srv/x.db"  # not a file named "x.db?timeout=5"
    for other in (
        "sqlite+aiosqlite://",
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite:///file:shared?mode=memory&cache=shared&uri=true",
        "postgresql+asyncpg://crossdock@db/crossdock",
    ):
        assert sqlite_file(other) is None, other


async def test_an_in_memory_database_still_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = Database("sqlite+aiosqlite://")
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (n INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (7)"))
            assert (await conn.execute(text("SELECT n FROM t"))).scalar_one() == 7
    finally:
        await db.dispose()
    assert os.listdir(tmp_path) == []  # no stray file named after the URL
