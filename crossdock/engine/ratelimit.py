"""Per connected-account rate budgets: token buckets in the database, shared by every worker.

`acquire(account)` is one atomic UPDATE ... RETURNING: it refills the bucket for the time elapsed,
takes one token (the balance may go negative: that is a reservation), and returns how long the
caller must sleep before its request may go out (`-tokens / rate` when negative). Because every
process books its slot in the same row, a budget holds globally however many workers run.

Burst tolerance: a bucket saves up at most `burst` tokens, so over any window of T seconds at most
`rate × T + burst` requests are *released*. The clock is the database's, read after the row lock
is taken (no skew between machines, no credit for time spent queueing on the lock). Network jitter after release can move a
request by a few milliseconds, which is why a test observing arrivals allows `burst` on top of
`rate` per one-second window. Accounts without a configured bucket are not limited.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from crossdock.core.db import Database
from crossdock.core.metrics import Metrics
from crossdock.engine.models import RateBucket

_PG_TAKE = text(
    """
    UPDATE engine_rate_buckets SET
        tokens = LEAST(burst, tokens + GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp()) - updated_at) * rate) - :cost,
        updated_at = GREATEST(updated_at, EXTRACT(EPOCH FROM clock_timestamp()))
    WHERE account = :account
    RETURNING tokens, rate
    """
)
# SQLite's clock is read inside the write transaction (after BEGIN IMMEDIATE got the lock), so a
# caller that queued on the lock books its slot from the time it got it, not from before.
_SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
_SQLITE_TAKE = text(
    """
    UPDATE engine_rate_buckets SET
        tokens = MIN(burst, tokens + MAX(0, {now} - updated_at) * rate) - :cost,
        updated_at = MAX(updated_at, {now})
    WHERE account = :account
    RETURNING tokens, rate
    """.replace("{now}", _SQLITE_NOW)
)


class RateBudgets:
    """Token buckets per connected account, stored in `engine_rate_buckets`."""

    def __init__(self, db: Database, metrics: Metrics | None = None) -> None:
        self.db = db
        self.metrics = metrics

    async def configure(self, account: str, rate_per_s: float, burst: float = 1.0) -> None:
        """Create or change an account's budget (the saved-up tokens start full)."""
        values = {"account": account, "rate": rate_per_s, "burst": burst, "tokens": burst, "updated_at": time.time()}
        ins = pg_insert(RateBucket) if self.db.dialect == "postgresql" else sqlite_insert(RateBucket)
        stmt = ins.values(**values).on_conflict_do_update(
            index_elements=["account"], set_={"rate": rate_per_s, "burst": burst}
        )
        async with self.db.engine.begin() as conn:
            await conn.execute(stmt)

    async def reserve(self, account: str, cost: float = 1.0) -> float:
        """Book `cost` tokens; return the seconds to wait before using them (0: go now)."""
        stmt = _PG_TAKE if self.db.dialect == "postgresql" else _SQLITE_TAKE
        async with self.db.engine.begin() as conn:
            row = (await conn.execute(stmt, {"account": account, "cost": cost})).first()
        if row is None:
            return 0.0
        tokens, rate = float(row[0]), float(row[1])
        return 0.0 if tokens >= 0 else -tokens / rate

    async def acquire(self, account: str, cost: float = 1.0) -> float:
        """Wait until the account's budget allows one request; returns the seconds waited."""
        delay = await self.reserve(account, cost)
        if delay > 0:
            if self.metrics is not None:
                self.metrics.rate_budget_waits.labels(account=account).inc()
            await asyncio.sleep(delay)
        return delay
