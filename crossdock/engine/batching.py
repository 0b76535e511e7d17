"""The machinery shared by the engine's two group commits: webhook intake and the step journal.

Callers queue items and await their futures; one loop hands everything queued to a write, keeping up
to `concurrency` writes in flight (PostgreSQL; SQLite has a single writer, so one), and records each
write's size and duration (`crossdock_group_commit_*{kind}`). Subclasses say how a batch is taken
from the queue (`_take`), written and settled (`_write`), and what to release after it (`_done`).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from crossdock.core.db import Database
from crossdock.core.metrics import Metrics, group_commit_observer

T = TypeVar("T")


class GroupCommitter(ABC, Generic[T]):
    def __init__(self, db: Database, *, kind: str, max_batch: int, concurrency: int, metrics: Metrics | None) -> None:
        self.db = db
        self.kind = kind
        self.max_batch = max_batch
        self.concurrency = 1 if db.dialect == "sqlite" else max(1, concurrency)
        self._observe = group_commit_observer(metrics, kind)
        self._queue: list[T] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start the loop (again after `close`, possibly on another event loop)."""
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name=f"crossdock-{self.kind}-commit")

    def _put(self, item: T) -> None:
        self.start()
        self._queue.append(item)
        self._wakeup.set()

    async def close(self) -> None:
        """Stop taking batches and let the writes in flight finish; what is still queued stays queued."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    def _take(self) -> list[T]:
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        return batch

    @abstractmethod
    async def _write(self, batch: list[T]) -> bool:
        """Write `batch` and settle its items' futures (never raises); True when it was committed."""

    def _done(self, batch: list[T]) -> None:
        """Called after each write, committed or not."""

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(0)  # let tasks that are ready this tick join the batch
            while self._queue and len(self._inflight) < self.concurrency:
                batch = self._take()
                if not batch:
                    break  # what is queued waits for a write in flight (see `_take`)
                self._inflight.add(asyncio.create_task(self._run(batch)))

    async def _run(self, batch: list[T]) -> None:
        started = time.perf_counter()
        try:
            if await self._write(batch):
                self._observe(len(batch), time.perf_counter() - started)
        finally:
            self._done(batch)
            self._inflight.discard(asyncio.current_task())
            if self._queue:
                self._wakeup.set()
