"""The reaper: re-queues runs whose lease expired (their worker died or hung).

It bumps `lease_epoch`, so even a worker that was only paused (GC, network partition) and comes
back can no longer commit anything for the run: its fenced writes match no row. Every worker
process runs the reaper; the UPDATE is idempotent, so there is no leader to elect.
"""

from __future__ import annotations

from sqlalchemy import update

from crossdock.core.clock import utcnow
from crossdock.core.db import Database
from crossdock.core.metrics import Metrics
from crossdock.engine.journal import RUNS
from crossdock.engine.models import RunStatus, in_state, unlocked_runs


async def reap_expired_leases(db: Database, metrics: Metrics | None = None) -> int:
    """Re-queue running runs whose lease expired; returns how many."""
    now = utcnow()
    async with db.single_writes.begin() as conn:  # one statement
        result = await conn.execute(
            update(RUNS)
            .where(unlocked_runs(in_state(RunStatus.RUNNING), RUNS.c.lease_expires_at < now))
            .values(
                status=RunStatus.QUEUED,
                lease_owner=None,
                lease_expires_at=None,
                lease_epoch=RUNS.c.lease_epoch + 1,
                available_at=now,
                updated_at=now,
            )
        )
    count = int(result.rowcount or 0)
    if count and metrics is not None:
        metrics.lease_expirations.inc(count)
    return count
