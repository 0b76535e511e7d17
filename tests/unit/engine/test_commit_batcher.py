"""CommitBatcher batching rules: several transactions in flight, never two holding ops of one run."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy.dialects.postgresql import asyncpg

from crossdock.engine.journal import CommitBatcher, CommitOp


def batcher(dialect: str, concurrency: int = 3, max_batch: int = 2000) -> CommitBatcher:
    db: Any = SimpleNamespace(dialect=dialect, engine=SimpleNamespace(dialect=asyncpg.dialect()))
    return CommitBatcher(db, lease_seconds=30, concurrency=concurrency, max_batch=max_batch)


def runs(batch: list[CommitOp]) -> list[str]:
    return [op.run_id for op in batch]


def test_a_run_is_never_in_two_batches_in_flight() -> None:
    b = batcher("postgresql")
    b._queue = [CommitOp("r1", 1), CommitOp("r2", 1), CommitOp("r1", 1), CommitOp("r3", 1)]

    first = b._take()
    second = b._take()  # r1's second op waits: r1 is in the first transaction
    assert (runs(first), runs(second), runs(b._queue)) == (["r1", "r2", "r3"], [], ["r1"])

    b._busy_runs.difference_update(runs(first))  # the first transaction ended
    assert runs(b._take()) == ["r1"]
    assert b._queue == []


def test_batches_respect_max_batch_and_keep_order() -> None:
    b = batcher("postgresql", max_batch=2)
    b._queue = [CommitOp(f"r{i}", 1) for i in range(5)]

    assert [runs(b._take()) for _ in range(3)] == [["r0", "r1"], ["r2", "r3"], ["r4"]]


def test_sqlite_writes_one_transaction_at_a_time() -> None:
    assert (batcher("sqlite", concurrency=3).concurrency, batcher("postgresql", concurrency=3).concurrency) == (1, 3)
