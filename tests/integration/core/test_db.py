"""The database layer's SQLite transaction modes: writers queue on the lock, pure reads do not."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from crossdock.core.db import Database


async def test_sqlite_reads_do_not_wait_for_a_held_writer_lock(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'locks.db'}")
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (n INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))

        async def read() -> int:
            async with db.reads.connect() as conn:
                return int((await conn.execute(text("SELECT sum(n) FROM t"))).scalar_one())

        async with db.engine.begin() as writer:  # BEGIN IMMEDIATE: holds the writer lock until the end
            await writer.execute(text("INSERT INTO t VALUES (41)"))
            # A read that took the writer lock too would wait here for the busy timeout (30 s).
            assert await asyncio.wait_for(read(), timeout=5) == 1  # the last committed snapshot
        assert await read() == 42
    finally:
        await db.engine.dispose()


async def test_sqlite_writers_still_take_the_lock_up_front(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'locks.db'}")
    try:
        async with db.engine.begin() as conn:
            # Only a SELECT, yet BEGIN IMMEDIATE has reserved the database: no other connection can write.
            assert (await conn.exec_driver_sql("SELECT 1")).scalar_one() == 1
            other = await db.reads.connect()
            try:
                await other.exec_driver_sql("PRAGMA busy_timeout = 0")
                failed = None
                try:
                    await other.exec_driver_sql("CREATE TABLE u (n INTEGER)")
                except Exception as exc:  # sqlite3.OperationalError wrapped by SQLAlchemy
                    failed = str(exc)
                assert failed is not None and "locked" in failed
            finally:
                await other.close()
    finally:
        await db.engine.dispose()
