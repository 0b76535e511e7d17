"""Time-driven work: due timers and wait timeouts, cron triggers, polling triggers, the reaper.

Every worker process runs a scheduler; none is a leader. Each action is a conditional UPDATE, so
two schedulers racing on the same trigger fire it once: a cron trigger moves its `next_fire_at`
with `WHERE next_fire_at = :seen` in the transaction that inserts the run (whose dedup key is the
trigger and fire time); a poll advances its durable cursor with `WHERE cursor_version = :seen`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from crossdock.core.clock import utcnow
from crossdock.engine.core import Engine
from crossdock.engine.journal import RUNS
from crossdock.engine.models import RunStatus, Trigger, in_state
from crossdock.engine.reaper import reap_expired_leases
from crossdock.engine.service import new_run_row, next_cron_fire

log = logging.getLogger("crossdock.engine.scheduler")


class Scheduler:
    def __init__(self, engine: Engine, *, interval: float = 0.25, depth_every: float = 5.0) -> None:
        self.engine = engine
        self.db = engine.db
        self.interval = interval
        self.depth_every = depth_every
        self._last_depth = 0.0

    def _insert_runs(self) -> Any:
        return pg_insert(RUNS) if self.db.dialect == "postgresql" else sqlite_insert(RUNS)

    async def wake_due(self) -> int:
        """Waiting runs whose timer or wait timeout is due become runnable."""
        now = utcnow()
        async with self.db.single_writes.begin() as conn:
            result = await conn.execute(
                update(RUNS)
                .where(in_state(RunStatus.WAITING), RUNS.c.wake_at <= now)
                .values(status=RunStatus.QUEUED, available_at=now, wake_at=None, updated_at=now)
            )
        return int(result.rowcount or 0)

    async def fire_cron(self) -> int:
        now = utcnow()
        async with self.db.single_reads.connect() as conn:
            due = (
                await conn.execute(
                    select(Trigger).where(
                        Trigger.kind == "cron", Trigger.enabled.is_(True), Trigger.next_fire_at <= now
                    )
                )
            ).all()
        fired = 0
        for t in due:
            cfg = t.config or {}
            # Missed fires are not back-filled: fire once for the due time, then move past now.
            nxt = next_cron_fire(cfg["cron"], cfg.get("timezone", "UTC"), max(now, t.next_fire_at))
            async with self.db.engine.begin() as conn:
                moved = await conn.execute(
                    update(Trigger)
                    .where(Trigger.id == t.id, Trigger.next_fire_at == t.next_fire_at)
                    .values(next_fire_at=nxt)
                )
                if moved.rowcount != 1:
                    continue
                fire_at: datetime = t.next_fire_at
                trigger = {"kind": "cron", "trigger_id": t.id, "fire_at": fire_at.isoformat()}
                row = new_run_row(
                    t.flow_id,
                    t.version_id,
                    t.partner_id,
                    t.merchant_id,
                    cfg.get("input") or {},
                    trigger,
                    f"cron:{t.id}:{fire_at.isoformat()}",
                )
                await conn.execute(self._insert_runs().values(row).on_conflict_do_nothing(index_elements=["dedup_key"]))
                fired += 1
        return fired

    async def run_polls(self) -> int:
        now = utcnow()
        async with self.db.single_reads.connect() as conn:
            due = (
                await conn.execute(
                    select(Trigger).where(
                        Trigger.kind == "poll", Trigger.enabled.is_(True), Trigger.next_fire_at <= now
                    )
                )
            ).all()
        started = 0
        for t in due:
            cfg = t.config or {}
            poller = self.engine.pollers.get(cfg.get("poller", ""))
            if poller is None:
                log.warning("poll trigger %s uses unknown poller %r", t.id, cfg.get("poller"))
                continue
            async with self.db.engine.begin() as conn:
                claimed = await conn.execute(
                    update(Trigger)
                    .where(Trigger.id == t.id, Trigger.next_fire_at == t.next_fire_at)
                    .values(next_fire_at=now + timedelta(seconds=float(cfg.get("every_s", 60))))
                )
            if claimed.rowcount != 1:
                continue
            try:
                items, cursor = await poller(cfg.get("config") or {}, t.cursor)
            except Exception:
                log.exception("poller %r failed for trigger %s", cfg.get("poller"), t.id)
                continue
            async with self.db.engine.begin() as conn:
                advanced = await conn.execute(
                    update(Trigger)
                    .where(Trigger.id == t.id, Trigger.cursor_version == t.cursor_version)
                    .values(cursor=cursor, cursor_version=t.cursor_version + 1)
                )
                if advanced.rowcount != 1:
                    await conn.rollback()
                    continue
                rows = [
                    new_run_row(
                        t.flow_id,
                        t.version_id,
                        t.partner_id,
                        t.merchant_id,
                        payload,
                        {"kind": "poll", "trigger_id": t.id},
                        f"poll:{t.id}:{key}",
                    )
                    for key, payload in items
                ]
                if rows:
                    await conn.execute(
                        self._insert_runs().values(rows).on_conflict_do_nothing(index_elements=["dedup_key"])
                    )
                started += len(rows)
        return started

    async def report_depth(self) -> None:
        async with self.db.single_reads.connect() as conn:
            rows = (
                await conn.execute(
                    select(RUNS.c.merchant_id, func.count())
                    .where(in_state(RunStatus.QUEUED))
                    .group_by(RUNS.c.merchant_id)
                )
            ).all()
        gauge = self.engine.metrics.queue_depth
        gauge.clear()
        for merchant, n in rows:
            gauge.labels(merchant=merchant or "-").set(n)

    async def tick(self) -> dict[str, int]:
        out = {
            "woken": await self.wake_due(),
            "reaped": await reap_expired_leases(self.db, self.engine.metrics),
            "cron": await self.fire_cron(),
            "polled": await self.run_polls(),
        }
        if time.monotonic() - self._last_depth >= self.depth_every:
            self._last_depth = time.monotonic()
            await self.report_depth()
        return out

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler tick failed")
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except TimeoutError:
                pass
