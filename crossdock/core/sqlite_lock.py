"""SQLite's write lock, handed from one Crossdock writer to the next at once.

SQLite lets one connection write at a time. A connection that finds the lock taken does not queue:
its busy handler sleeps and tries again, 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then 100 ms
apart, until `busy_timeout`. Under a steady stream of writes from two connections (the webhook
intake's group commit and a worker's claims and journal, in one process or two) a writer that lost
the race a few times sleeps 10-100 ms while the lock was free most of that time: the embedded
system's acknowledgements waited ~50 ms at a quarter of its peak rate (docs/performance.md,
profile 16).

So every Crossdock write transaction on a SQLite file first takes an exclusive `flock` on a file
beside the database (`<database>-writer.lock`), one open file per connection (`WriterTurn`), and only then
issues `BEGIN IMMEDIATE`; the lock goes after its COMMIT or ROLLBACK. The kernel wakes a waiter as
soon as the holder lets go, in this process or another. The wait runs in a thread (the event loop
never blocks) and gives up after the same 30 s as `busy_timeout`. A writer that is not Crossdock
(the `sqlite3` shell) does not know this lock and is still arbitrated by SQLite's own, as before.

Waiters go first. `flock` does not queue either: when the holder lets go, a writer that asks right
then (the same worker starting its next transaction) can take the lock before the kernel has woken
the waiter, which then waits a turn more, and another (the acknowledgements' p99 went with it). So a
waiter holds a shared `flock` on a second file (`<database>-writer.wait`) while it waits, and a
writer takes the lock straight away only when it can take that file exclusively, that is when
nobody waits; otherwise it waits too.

SQLite's automatic checkpoint runs inside the COMMIT that crosses `wal_autocheckpoint` pages, while
this lock would still be held, so it is off on these connections: `WalCheckpointer`, a thread per
process, copies the WAL back into the database outside any writer's turn (PASSIVE: it never blocks
a writer nor waits for one).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.util.concurrency import await_, in_greenlet

log = logging.getLogger("crossdock.core.sqlite_lock")

LOCK_SUFFIX = "-writer.lock"
WAIT_SUFFIX = "-writer.wait"


_Job = tuple[concurrent.futures.Future[Any], Any, tuple[Any, ...], Any]


class _DaemonThreads:
    """A few daemon threads for the blocking waits: a thread stuck on a lock that is never given back
    must not keep the process from exiting (`concurrent.futures` joins its threads at exit)."""

    def __init__(self, limit: int) -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._limit = limit
        self._threads = 0
        self._idle = 0  # threads waiting for a job and not yet promised one

    def submit(self, fn: Any, *args: Any, on_skip: Any = None) -> concurrent.futures.Future[Any]:
        """Run `fn(*args)` in a thread; `on_skip(*args)` instead if the future is cancelled first."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((future, fn, args, on_skip))
        with self._lock:
            if self._idle:
                self._idle -= 1  # that thread takes this job
            elif self._threads < self._limit:
                self._threads += 1
                threading.Thread(target=self._work, name="crossdock-sqlite-turn", daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            future, fn, args, on_skip = self._jobs.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)
            elif on_skip is not None:
                on_skip(*args)
            with self._lock:
                self._idle += 1


# One thread per waiting writer at most (a waiter blocks in flock); the connection pools bound them.
_waiters = _DaemonThreads(limit=64)


class WriterTurn:
    """One connection's turns at writing a SQLite file: its own open lock files (`flock` locks
    belong to an open file, so two connections of one process exclude each other like two
    processes). Owned by the connection (`core.sqlite_inline`), and closed with it however it goes:
    closing the files ends a turn the connection still held."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.held = False
        self._fd, self._wait_fd = -1, -1
        self._fd, self._wait_fd = _open(db_path + LOCK_SUFFIX), _open(db_path + WAIT_SUFFIX)

    def acquire(self, timeout: float) -> None:
        """Take the turn (from SQLAlchemy's sync context: inside the asyncio greenlet the wait is a
        thread's; a synchronous caller, with no event loop to keep free, waits inline)."""
        if self.held or self._fd < 0:
            return
        if not _take_at_once(self._fd, self._wait_fd):
            if not in_greenlet():
                _wait_turn(self._fd, self._wait_fd)
            else:
                try:
                    await_(_wait(self._fd, self._wait_fd, timeout))
                except BaseException:
                    # Timed out or cancelled while a thread still waits on these open files (through
                    # its own duplicates): it may get the lock later. Swap in fresh files; the old
                    # ones close, and with them the thread's lock, as soon as the thread is done.
                    self._reopen()
                    raise
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.held = False
        fds, (self._fd, self._wait_fd) = (self._fd, self._wait_fd), (-1, -1)
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _reopen(self) -> None:
        self.close()
        self._fd, self._wait_fd = _open(self.db_path + LOCK_SUFFIX), _open(self.db_path + WAIT_SUFFIX)

    def __del__(self) -> None:  # a connection dropped without being closed
        self.close()


def _open(path: str) -> int:
    """Read-write where it may (the first opener creates the file, group-writable as the umask
    allows); read-only otherwise, which `flock` accepts as well (a worker running as another user)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o664)
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def _take_at_once(fd: int, wait_fd: int) -> bool:
    """The lock, if it is free and nobody waits for it."""
    try:
        fcntl.flock(wait_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a waiter holds it shared
    except BlockingIOError:
        return False
    fcntl.flock(wait_fd, fcntl.LOCK_UN)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait_turn(fd: int, wait_fd: int) -> None:
    fcntl.flock(wait_fd, fcntl.LOCK_SH)  # "someone waits": writers that come now wait too
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        fcntl.flock(wait_fd, fcntl.LOCK_UN)


def _close_copies(fd: int, wait_fd: int) -> None:
    os.close(fd)
    os.close(wait_fd)


def _wait_turn_on_copies(fd: int, wait_fd: int) -> None:
    """`_wait_turn` on duplicates of the connection's descriptors (the same open files, so the same
    locks): a waiter given up on (`WriterTurn.acquire`) has its descriptors closed, and their numbers
    may be reused, while this thread still waits; it must not unlock whatever they name by then."""
    try:
        _wait_turn(fd, wait_fd)
    finally:
        _close_copies(fd, wait_fd)


async def _wait(fd: int, wait_fd: int, timeout: float) -> None:
    job = _waiters.submit(_wait_turn_on_copies, os.dup(fd), os.dup(wait_fd), on_skip=_close_copies)
    try:
        await asyncio.wait_for(asyncio.wrap_future(job), timeout)
    except TimeoutError:
        raise OperationalError(
            "BEGIN IMMEDIATE",
            None,
            sqlite3.OperationalError(f"database is locked (no write turn in {timeout:g} s)"),
        ) from None


class WalCheckpointer:
    """Copies a SQLite database's WAL back into the database file every `interval` seconds, in a
    daemon thread with its own connection (the writers' automatic checkpoint is off, see above)."""

    def __init__(self, db_path: str, interval: float = 1.0) -> None:
        self.db_path = db_path
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="crossdock-wal-checkpoint", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        self._stop.set()
        if thread is None:
            return  # nothing was written through this engine (and the file may not even exist)
        if thread is not threading.current_thread():
            thread.join(timeout=10)
        self.checkpoint()  # what the writers left in the WAL

    def checkpoint(self, conn: sqlite3.Connection | None = None) -> None:
        own = conn is None
        try:
            if conn is None:
                conn = sqlite3.connect(self.db_path, timeout=0)
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # busy or gone: the next round tries again
            log.debug("WAL checkpoint of %s: %s", self.db_path, exc)
        finally:
            if own and conn is not None:
                conn.close()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.db_path, timeout=0, check_same_thread=False)
            while not self._stop.wait(self.interval):
                self.checkpoint(conn)
        except sqlite3.Error:
            log.exception("WAL checkpointer of %s stopped", self.db_path)
        finally:
            if conn is not None:
                conn.close()
