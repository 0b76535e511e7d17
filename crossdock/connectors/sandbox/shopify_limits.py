"""Shopify's two throttles, simulated: the REST leaky bucket and the GraphQL cost bucket.

Both take an injected `clock` (seconds, monotonic) so tests can check the arithmetic exactly
without sleeping. Plan figures (Standard plan, from shopify.dev "API rate limits"):

* REST: a bucket of 40 requests leaking 2 per second; header `X-Shopify-Shop-Api-Call-Limit: n/40`.
* GraphQL: 100 points/second restore rate with a 2,000-point bucket (the figures the vendor's own
  `throttleStatus` sample shows for Standard); a single query may not ask for more than 1,000.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


class ManualClock:
    """A clock tests move by hand; safe to read from the simulator's server thread."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class BucketDecision:
    """The outcome of offering one request to a bucket."""

    allowed: bool
    level: int  # marbles in the bucket after the decision (what the header reports)
    capacity: int
    retry_after: float  # seconds until one more request would fit; 0 when allowed


class LeakyBucket:
    """REST call limit: each request adds one marble; the bucket leaks `leak_rate` per second."""

    def __init__(self, capacity: int = 40, leak_rate: float = 2.0, clock: Clock = time.monotonic) -> None:
        self.capacity = capacity
        self.leak_rate = leak_rate
        self.clock = clock
        self._level = 0.0
        self._at = clock()
        self._lock = threading.Lock()
        self.max_level = 0.0

    def _leak(self, now: float) -> None:
        self._level = max(0.0, self._level - (now - self._at) * self.leak_rate)
        self._at = now

    def offer(self) -> BucketDecision:
        with self._lock:
            now = self.clock()
            self._leak(now)
            # A small epsilon keeps float noise from rejecting a request that exactly fits.
            if self._level + 1 <= self.capacity + 1e-9:
                self._level += 1
                self.max_level = max(self.max_level, self._level)
                return BucketDecision(True, _ceil(self._level), self.capacity, 0.0)
            wait = (self._level + 1 - self.capacity) / self.leak_rate
            return BucketDecision(False, _ceil(self._level), self.capacity, wait)

    @property
    def level(self) -> float:
        with self._lock:
            self._leak(self.clock())
            return self._level


def _ceil(x: float) -> int:
    n = int(x)
    return n if x - n < 1e-9 else n + 1


@dataclass
class CostDecision:
    """The outcome of asking the GraphQL bucket for `requested` points."""

    allowed: bool
    requested: int
    currently_available: float
    maximum_available: float
    restore_rate: float


class CostBucket:
    """GraphQL calculated-cost bucket: points restore continuously at `restore_rate` per second."""

    def __init__(self, maximum: float = 2000.0, restore_rate: float = 100.0, clock: Clock = time.monotonic) -> None:
        self.maximum = maximum
        self.restore_rate = restore_rate
        self.clock = clock
        self._available = maximum
        self._at = clock()
        self._lock = threading.Lock()

    def _restore(self, now: float) -> None:
        self._available = min(self.maximum, self._available + (now - self._at) * self.restore_rate)
        self._at = now

    def take(self, requested: int) -> CostDecision:
        with self._lock:
            self._restore(self.clock())
            if requested <= self._available + 1e-9:
                self._available -= requested
                return CostDecision(True, requested, self._available, self.maximum, self.restore_rate)
            return CostDecision(False, requested, self._available, self.maximum, self.restore_rate)

    def refund(self, points: float) -> float:
        """Give back the difference between requested and actual cost; returns what is available."""
        with self._lock:
            self._restore(self.clock())
            self._available = min(self.maximum, self._available + points)
            return self._available


@dataclass
class RateRecorder:
    """Counts requests per fixed window so tests and the benchmark can read the observed peak."""

    window_s: float = 1.0
    clock: Clock = time.monotonic
    accepted: int = 0
    throttled: int = 0
    max_in_window: int = 0
    _recent: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, *, allowed: bool) -> None:
        with self._lock:
            if not allowed:
                self.throttled += 1
                return
            now = self.clock()
            self.accepted += 1
            self._recent.append(now)
            while self._recent and self._recent[0] <= now - self.window_s:
                self._recent.popleft()
            self.max_in_window = max(self.max_in_window, len(self._recent))

    def snapshot(self) -> dict[str, float | int]:
        with self._lock:
            return {
                "accepted": self.accepted,
                "throttled": self.throttled,
                "window_s": self.window_s,
                "max_in_window": self.max_in_window,
            }
