"""TTLCache: single-flight loads, stale-while-refresh, failures not cached."""

from __future__ import annotations

import asyncio

import pytest

from crossdock.core.cache import TTLCache


class Source:
    def __init__(self) -> None:
        self.value = "v1"
        self.calls = 0
        self.fail: Exception | None = None
        self.gate = asyncio.Event()
        self.gate.set()

    async def load(self) -> str:
        self.calls += 1
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.value


async def test_concurrent_misses_share_one_load() -> None:
    cache: TTLCache[str, str] = TTLCache(ttl=60)
    source = Source()
    source.gate.clear()
    waiting = [asyncio.create_task(cache.get("k", source.load)) for _ in range(20)]
    await asyncio.sleep(0.01)
    source.gate.set()

    assert await asyncio.gather(*waiting) == ["v1"] * 20
    assert source.calls == 1
    assert await cache.get("k", source.load) == "v1" and source.calls == 1  # fresh: from memory


async def test_a_stale_entry_is_answered_at_once_while_one_refresh_runs() -> None:
    cache: TTLCache[str, str] = TTLCache(ttl=0.2)
    source = Source()
    assert await cache.get("k", source.load) == "v1"
    await asyncio.sleep(0.25)  # expired, by less than one more ttl
    source.value = "v2"
    source.gate.clear()  # the refresh hangs until we let it go

    during = [await cache.get("k", source.load) for _ in range(5)]
    source.gate.set()
    await asyncio.sleep(0.01)

    assert during == ["v1"] * 5  # nobody waited for the refresh
    assert source.calls == 2  # one refresh, not five
    assert await cache.get("k", source.load) == "v2"


async def test_failures_are_not_cached_and_drop_the_stale_entry() -> None:
    cache: TTLCache[str, str] = TTLCache(ttl=0.2)
    source = Source()
    source.fail = LookupError("gone")
    with pytest.raises(LookupError):
        await cache.get("k", source.load)
    source.fail = None
    assert await cache.get("k", source.load) == "v1"  # the failure was not remembered

    await asyncio.sleep(0.25)
    source.fail = LookupError("deleted")
    assert await cache.get("k", source.load) == "v1"  # stale answer; the refresh fails behind it
    await asyncio.sleep(0.01)
    with pytest.raises(LookupError, match="deleted"):
        await cache.get("k", source.load)  # the entry was dropped: this caller waits and sees why


async def test_an_entry_stale_by_more_than_one_ttl_is_not_served() -> None:
    cache: TTLCache[str, str] = TTLCache(ttl=0.01)
    source = Source()
    assert await cache.get("k", source.load) == "v1"
    await asyncio.sleep(0.03)  # expired, and more than one ttl ago: e.g. a secret rotated meanwhile
    source.value = "v2"

    assert await cache.get("k", source.load) == "v2"  # waited for the load instead of answering v1
