"""A small async read-through cache with a time-to-live and single-flight loading.

Hot paths (webhook intake) look up configuration that changes rarely: a connection's secrets, the
endpoints subscribed to it. `TTLCache.get(key, load)` answers from memory while an entry is fresh.
A missing entry is loaded once however many callers ask at the same time (single flight: an expiry
under load used to cost one query and one new database connection per in-flight request). An entry
stale by less than one more `ttl` is still answered at once while one background load refreshes
it, so a busy key never makes a request wait for a refresh (they did, every second, in the
acknowledgement tail); older entries are not served. A change (a rotated secret, a disabled
connection) therefore takes effect within at most two `ttl`s. A failed load is not cached and drops the stale entry: the next caller
waits for a load of its own and gets its result or its exception.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}
        self.loads = 0

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        hit = self._items.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = pending
            pending.add_done_callback(_consume)  # a failure nobody awaited stays out of the log
        if hit is not None and now < hit[0] + self.ttl:
            return hit[1]  # stale by less than one ttl: answered while the refresh runs
        # shield: a caller that gives up (client gone) must not cancel the load the others await.
        return await asyncio.shield(pending)

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        try:
            try:
                value = await load()
            except BaseException:
                self._items.pop(key, None)  # e.g. deleted: the next caller waits for a load and sees why
                raise
            self.loads += 1
            self._items[key] = (time.monotonic() + self.ttl, value)
            return value
        finally:
            self._loading.pop(key, None)

    def invalidate(self, key: K | None = None) -> None:
        """Forget `key` (or everything): the next `get` loads again."""
        if key is None:
            self._items.clear()
        else:
            self._items.pop(key, None)


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
