"""The benchmark's slow-ack episodes and disk sampler (bench/harness/iostats.py)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from harness import iostats, report  # noqa: E402

MS = 1_000_000


def _row(order: int, send_ms: float, wait_ms: float, status: int = 200) -> list[int]:
    t_send = int(send_ms * MS)
    return [order, t_send, t_send + int(wait_ms * MS), status, 0, 0]


def test_slow_acks_group_into_episodes_by_send_gap() -> None:
    rows = [
        _row(1, 0, 3),
        _row(2, 1000, 40),  # episode A
        _row(3, 1050, 120),  # 50 ms later: still A
        _row(4, 1120, 30),  # 70 ms after the last slow send: still A
        _row(5, 1300, 5),  # fast: not counted
        _row(6, 1400, 60),  # 280 ms after A's last slow send: episode B
        _row(7, 1410, 500, status=503),  # an error is not an ack
        _row(8, 3000, 25),  # exactly the threshold is not slow
    ]
    eps = iostats.slow_episodes(rows, threshold_ms=25, gap_ms=100)
    assert [e["acks"] for e in eps] == [3, 1]
    a, b = eps
    assert a["t0_ns"] == 1000 * MS
    assert a["t1_ns"] == (1050 + 120) * MS  # the latest ack of the episode, not the last one sent
    assert a["worst_ms"] == pytest.approx(120)
    assert b["t0_ns"] == 1400 * MS and b["worst_ms"] == pytest.approx(60)
    assert iostats.slow_episodes([_row(1, 0, 3)]) == []


def _samples(written_mb_at: dict[int, float], until_ms: int, step_ms: int = 20) -> list[tuple[int, int, int, int]]:
    """Cumulative bytes written, 1 MB per 100 ms of background plus the given bursts (ms -> MB)."""
    out, total = [], 0.0
    for t in range(0, until_ms + 1, step_ms):
        total += 0.2 + written_mb_at.get(t, 0.0)
        out.append((t * MS, int(total * 2**20), 100_000, 0))
    return out


def test_phase_io_marks_the_episode_that_sits_on_a_write_burst() -> None:
    rows = [_row(i, 1000 + i, 50) for i in range(20)]  # episode at 1.0 s
    rows += [_row(100 + i, 5000 + i, 40) for i in range(5)]  # episode at 5.0 s
    samples = _samples({900: 60.0}, until_ms=8000)  # 60 MB in one sample just before the first
    io = iostats.phase_io(rows, samples, t_start_ns=0, t_end_ns=8000 * MS)
    first, second = io["episodes"]
    assert first["io"] is True and first["burst_mb"] >= 60
    assert first["acks"] == 20 and first["at_s"] == 1.0
    assert second["io"] is False and second["burst_mb"] < 2
    assert io["slow_acks"] == 25 and io["slow_acks_io"] == 20 and io["episode_count"] == 2
    assert io["disk_write_mb_s"] == pytest.approx((8000 / 20 * 0.2 + 60) / 8, rel=0.02)
    assert io["dirty_peak_mb"] == pytest.approx(100_000 / 1024, rel=0.01)


def test_a_burst_between_samples_far_apart_or_just_before_the_episode_counts() -> None:
    # the sampler fell behind: 50 MB written between samples 120 ms apart (more than the window)
    late = [(0, 0, 0, 0), (20 * MS, 0, 0, 0), (140 * MS, 50 * 2**20, 0, 0), (160 * MS, 50 * 2**20, 0, 0)]
    assert iostats._max_burst(late, 0, 200 * MS, 100 * MS) == 50 * 2**20
    # written between the last sample before the range and the first inside it
    assert iostats._max_burst(late, 100 * MS, 200 * MS, 100 * MS) == 50 * 2**20
    assert iostats._max_burst(late, 150 * MS, 200 * MS, 100 * MS) == 0


def test_phase_io_keeps_the_largest_episodes() -> None:
    rows = []
    for k in range(iostats.MAX_EPISODES + 4):
        rows += [_row(k * 100 + i, k * 500 + i, 30) for i in range(k + 1)]
    io = iostats.phase_io(rows, _samples({}, until_ms=10_000), 0, 10_000 * MS)
    assert io["episode_count"] == iostats.MAX_EPISODES + 4
    assert len(io["episodes"]) == iostats.MAX_EPISODES
    assert min(e["acks"] for e in io["episodes"]) == 5  # the four smallest (1-4 acks) left out
    assert [e["at_s"] for e in io["episodes"]] == sorted(e["at_s"] for e in io["episodes"])


def test_proc_text_parsing(tmp_path: Path) -> None:
    diskstats = (
        " 254       0 vda 100 0 200 10 300 0 4000 50 0 60 70\n"
        " 254       1 vda1 100 0 200 10 300 0 3000 50 0 60 70\n"
        "   7       0 loop0 1 0 2 0 3 0 999 0 0 0 0\n"
    )
    assert iostats.disk_written_bytes({"vda"}, diskstats) == 4000 * 512
    meminfo = "MemTotal: 100 kB\nDirty:            2048 kB\nWriteback:          16 kB\n"
    assert iostats.dirty_kb(meminfo) == (2048, 16)
    for name in ("vda", "loop0", "ram1", "zram0", "nvme0n1", "dm-0"):
        (tmp_path / name / "slaves").mkdir(parents=True)
    (tmp_path / "dm-0" / "slaves" / "nvme0n1").touch()  # LVM on nvme0n1: its writes are nvme0n1's
    assert iostats.whole_disks(tmp_path) == {"vda", "nvme0n1"}
    assert iostats.whole_disks(tmp_path / "missing") == set()


@pytest.mark.skipif(not iostats.available(), reason="needs Linux /proc")
def test_sampler_sees_a_synced_write_on_this_disk() -> None:
    scratch = BENCH / ".peers"
    scratch.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as d, iostats.IoSampler(interval=0.01) as io:
        time.sleep(0.05)
        with open(Path(d) / "blob", "wb") as f:
            f.write(os.urandom(8 * 2**20))
            f.flush()
            os.fsync(f.fileno())
        time.sleep(0.05)
    times = [s[0] for s in io.samples]
    assert times == sorted(times) and len(times) >= 5
    written = io.samples[-1][1] - io.samples[0][1]
    assert written >= 8 * 2**20


def test_report_lists_episodes_per_repetition() -> None:
    io = {
        "slow_acks": 120,
        "slow_acks_io": 100,
        "episode_count": 2,
        "disk_write_mb_s": 12.5,
        "dirty_peak_mb": 180.0,
        "episodes": [
            {"at_s": 7.1, "span_ms": 160, "acks": 100, "worst_ms": 85, "disk_mb": 210, "burst_mb": 120, "io": True},
            {"at_s": 2.0, "span_ms": 40, "acks": 20, "worst_ms": 30, "disk_mb": 3, "burst_mb": 1, "io": False},
        ],
    }
    run = {"system": "crossdock_pg_1w", "rep": 2, "ok": True, "latency": {"80%": {"ack_p99_ms": 61.0, "io": io}}}
    lines = report._episodes_section([run, {"system": "ceiling", "rep": 1, "ok": True, "latency": {}}])
    table = [ln for ln in lines if ln.startswith("| crossdock_pg_1w")]
    assert len(table) == 1
    assert "| 2 | 61.0 | 120 | 2 | 100 (83%) | 12.5 | 180 |" in table[0]
    assert table[0].index("2: 40") < table[0].index("7.1: 160")
    assert "(burst)" in table[0]
    assert report._episodes_section([{"system": "x", "rep": 1, "ok": True, "latency": {}}]) == []
