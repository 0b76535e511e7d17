"""A small async read-through cache with a time-to-live and single-flight loading.

Hot paths (webhook intake) look up configuration that changes rarely: a connection's secrets, the
endpoints subscribed to it. `TTLCache.get(key, load)` answers from memory while an entry is fresh;
when it is stale, the first caller loads it and every concurrent caller of the same key awaits that
one load, so an expiry under load costs one query, not one per in-flight request (which also
opened a burst of new database connections). A failed load is not cached: its callers all get the
exception and the next call tries again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

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
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = pending
        # shield: a caller that gives up (client gone) must not cancel the load the others await.
        return await asyncio.shield(pending)

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        try:
            value = await load()
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
