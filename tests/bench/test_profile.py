"""`bench/profile.py`: CPU per order by process and WAL per order, on a real Crossdock + PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from harness.systems import pg_available  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(pg_available() is not None, reason="PostgreSQL not reachable"),
]


def test_open_loop_split_names_every_process_and_counts_wal() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH / "profile.py"), "--rates", "200", "--seconds", "2", "--warmup", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    ).stdout
    (phase,) = json.loads(out)
    assert phase["mode"] == "open" and phase["offered_per_s"] == 200
    cpu = phase["cpu_us_per_order"]
    # the API, the worker and the PostgreSQL backends of each, told apart by application_name
    assert set(cpu) >= {"api", "worker1", "pg:api", "pg:worker"}
    assert all(cpu[k] > 0 for k in ("api", "worker1", "pg:api", "pg:worker"))
    assert phase["cpu_us_per_order_total"] == sum(cpu.values())
    # every acked order was run and delivered: a run row, two journal rows, an effect: KBs of WAL
    assert phase["delivered"] >= 380
    assert 2_000 < phase["wal_bytes_per_order"] < 50_000
    assert 0 < phase["ack_p50_ms"] <= phase["ack_p99_ms"]


def test_sqlite_backend_splits_api_and_worker_and_has_no_wal_figure() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH / "profile.py"), "--backend", "sqlite", "--rates", "150", "--seconds", "2",
         "--warmup", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    ).stdout  # fmt: skip
    (phase,) = json.loads(out)
    cpu = phase["cpu_us_per_order"]
    assert set(cpu) == {"api", "worker1"}  # no PostgreSQL backends to split out
    assert all(v > 0 for v in cpu.values())
    assert phase["delivered"] >= 280
    assert phase["wal_bytes_per_order"] is None
