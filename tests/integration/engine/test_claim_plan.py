"""The claim's query plan on SQLite: counting the running runs must not walk the merchant's history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from crossdock.core.db import make_engine
from crossdock.core.migrate import upgrade
from crossdock.engine.worker import _claim_statement


async def test_the_sqlite_claim_counts_running_runs_on_their_partial_index(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    sql = str(_claim_statement("sqlite"))
    params = {"now": "2030-01-01", "exp": "2030-01-01", "owner": "w", "cap": 8, "limit": 10}
    with sqlite3.connect(path) as raw:
        plan = [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + sql, params)]
    running = [step for step in plan if "engine_runs" in step and "merchant_id" in step]
    # Left to itself SQLite scanned ix_engine_runs_merchant_id, every run the merchant ever had
    # (8.5 ms per claim at 30,000 runs, docs/performance.md profile 16).
    assert running == [], plan
    assert any("ix_engine_runs_running" in step for step in plan), plan
    assert any("ix_engine_runs_queued" in step for step in plan), plan
