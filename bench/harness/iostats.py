"""Slow-acknowledgement episodes and the disk traffic beside them.

On a 2-core machine the ack tail of a durable system comes in *episodes*: tens to hundreds of
milliseconds in which every acknowledgement waits (docs/performance.md, profiles 11-14). Most of
them fall on a burst of writes to the disk: the kernel's periodic writeback of dirty table pages,
a WAL segment being created (16 MB of zeros), a checkpoint. So every open-loop phase is measured
with an :class:`IoSampler` beside it, and the report says, per repetition, how many episodes the
phase had and how much was written to the disk in each.

* ``/proc/diskstats``: sectors written (field 10, 512 bytes each), summed over whole disks (the
  entries of ``/sys/block``, without loop, ram and zram devices);
* ``/proc/meminfo``: ``Dirty`` (page cache not yet written) and ``Writeback`` (being written).

Sizes are reported in MB of 2**20 bytes.

An episode is a run of acks slower than ``threshold_ms`` whose send times are less than ``gap_ms``
apart. Its disk figures cover the window from 300 ms before its first slow request to its last ack.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from .procstats import BackgroundSampler

SECTOR = 512
THRESHOLD_MS = 25.0  # the ack p99 target: slower acks form episodes
GAP_MS = 100.0
LEAD_MS = 300.0  # disk traffic this long before an episode's first slow send counts for it
BURST_WINDOW_MS = 100.0
MIN_BURST_MB = 8.0  # a burst: at least this much written in BURST_WINDOW_MS, and 4x the phase's median
MAX_EPISODES = 8  # per phase in the report (the largest by slow acks)

_SKIP_PREFIXES = ("loop", "ram", "zram")


def whole_disks(sys_block: Path = Path("/sys/block")) -> set[str]:
    """Names of the machine's whole disks (partitions are not in /sys/block)."""
    try:
        devices = list(sys_block.iterdir())
    except OSError:
        return set()
    # Device-mapper and md devices write through the disks below them (their `slaves`): count those only.
    return {d.name for d in devices if not d.name.startswith(_SKIP_PREFIXES) and not _has_slaves(d)}


def _has_slaves(device: Path) -> bool:
    try:
        return any((device / "slaves").iterdir())
    except OSError:
        return False


def disk_written_bytes(disks: set[str], diskstats: str | None = None) -> int:
    """Bytes written since boot to ``disks``, from /proc/diskstats (or the given text)."""
    if diskstats is None:
        try:
            with open("/proc/diskstats") as f:
                diskstats = f.read()
        except OSError:
            return 0
    total = 0
    for line in diskstats.splitlines():
        f = line.split()
        if len(f) > 9 and f[2] in disks:
            total += int(f[9]) * SECTOR
    return total


def dirty_kb(meminfo: str | None = None) -> tuple[int, int]:
    """(Dirty, Writeback) in kB, from /proc/meminfo (or the given text)."""
    if meminfo is None:
        try:
            with open("/proc/meminfo") as f:
                meminfo = f.read()
        except OSError:
            return 0, 0
    found = {"Dirty": 0, "Writeback": 0}
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        if key in found:
            found[key] = int(rest.split()[0])
    return found["Dirty"], found["Writeback"]


class IoSampler(BackgroundSampler):
    """Samples (t_ns, bytes written to disk, Dirty kB, Writeback kB) every 20 ms."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(interval)
        self.disks = whole_disks()
        self.samples: list[tuple[int, int, int, int]] = []

    def sample(self) -> None:
        self.samples.append((time.monotonic_ns(), disk_written_bytes(self.disks), *dirty_kb()))


def slow_episodes(
    rows: Sequence[Sequence[int]], threshold_ms: float = THRESHOLD_MS, gap_ms: float = GAP_MS
) -> list[dict]:
    """Group the slow acks of a phase's rows ([order, t_send_ns, t_ack_ns, status, ...]; answered
    2xx only) into episodes: {t0_ns (first slow send), t1_ns (last slow ack), acks, worst_ms}."""
    slow = sorted(
        (r for r in rows if 200 <= r[3] < 300 and (r[2] - r[1]) / 1e6 > threshold_ms),
        key=lambda r: r[1],
    )
    episodes: list[dict] = []
    for r in slow:
        wait_ms = (r[2] - r[1]) / 1e6
        last = episodes[-1] if episodes else None
        if last is not None and (r[1] - last["last_send_ns"]) / 1e6 < gap_ms:
            last["t1_ns"] = max(last["t1_ns"], r[2])
            last["last_send_ns"] = r[1]
            last["acks"] += 1
            last["worst_ms"] = max(last["worst_ms"], wait_ms)
        else:
            episodes.append({"t0_ns": r[1], "t1_ns": r[2], "last_send_ns": r[1], "acks": 1, "worst_ms": wait_ms})
    for e in episodes:
        del e["last_send_ns"]
    return episodes


def _written_between(samples: Sequence[tuple[int, int, int, int]], t0: int, t1: int) -> int:
    inside = [s for s in samples if t0 <= s[0] <= t1]
    return inside[-1][1] - inside[0][1] if len(inside) >= 2 else 0


def _max_burst(samples: Sequence[tuple[int, int, int, int]], t0: int, t1: int, window_ns: int) -> int:
    """Most bytes written in any `window_ns` of [t0, t1], sliding over the samples. The sample before t0
    opens the range (a write just before it counts), and two samples further apart than the window (a
    sampler that fell behind, as it does on a busy machine) count whole."""
    first = max(0, next((i for i, s in enumerate(samples) if s[0] >= t0), len(samples)) - 1)
    inside = [s for s in samples[first:] if s[0] <= t1]
    best = 0
    j = 0
    for i in range(1, len(inside)):
        while j < i - 1 and inside[i][0] - inside[j][0] > window_ns:
            j += 1
        best = max(best, inside[i][1] - inside[j][1])
    return best


def phase_io(
    rows: Sequence[Sequence[int]],
    samples: Sequence[tuple[int, int, int, int]],
    t_start_ns: int,
    t_end_ns: int,
    threshold_ms: float = THRESHOLD_MS,
) -> dict:
    """A phase's disk traffic and its slow-ack episodes, each with what was written around it.

    `io` marks an episode with a burst of writes in its window: at least MIN_BURST_MB in
    BURST_WINDOW_MS, and at least 4x the phase's median for such a window."""
    window_ns = int(BURST_WINDOW_MS * 1e6)
    in_phase = [s for s in samples if t_start_ns <= s[0] <= t_end_ns]
    per_window = [b[1] - a[1] for a, b in itertools.pairwise(in_phase[:: max(1, _step(in_phase, window_ns))])]
    typical = statistics.median(per_window) if per_window else 0
    burst_floor = max(MIN_BURST_MB * 2**20, 4 * typical)
    seconds = max(1e-9, (t_end_ns - t_start_ns) / 1e9)
    episodes = []
    for e in slow_episodes(rows, threshold_ms):
        lo, hi = e["t0_ns"] - int(LEAD_MS * 1e6), e["t1_ns"]
        burst = _max_burst(samples, lo, hi, window_ns)
        near = [s for s in samples if lo <= s[0] <= hi]
        episodes.append(
            {
                "at_s": round((e["t0_ns"] - t_start_ns) / 1e9, 2),
                "span_ms": round((e["t1_ns"] - e["t0_ns"]) / 1e6, 1),
                "acks": e["acks"],
                "worst_ms": round(e["worst_ms"], 1),
                "disk_mb": round(_written_between(samples, lo, hi) / 2**20, 1),
                "burst_mb": round(burst / 2**20, 1),
                "dirty_mb": round(max((s[2] for s in near), default=0) / 1024, 1),
                "io": burst >= burst_floor,
            }
        )
    slow_acks = sum(e["acks"] for e in episodes)
    top = sorted(episodes, key=lambda e: -e["acks"])[:MAX_EPISODES]
    return {
        "slow_acks": slow_acks,
        "slow_acks_io": sum(e["acks"] for e in episodes if e["io"]),
        "episodes": sorted(top, key=lambda e: e["at_s"]),
        "episode_count": len(episodes),
        "disk_write_mb_s": round(_written_between(samples, t_start_ns, t_end_ns) / 2**20 / seconds, 1),
        "dirty_peak_mb": round(max((s[2] for s in in_phase), default=0) / 1024, 1),
    }


def _step(samples: Sequence[tuple[int, int, int, int]], window_ns: int) -> int:
    """How many samples make one `window_ns` (for the phase's typical write volume per window)."""
    if len(samples) < 2:
        return 1
    spacing = (samples[-1][0] - samples[0][0]) / (len(samples) - 1)
    return max(1, round(window_ns / max(spacing, 1)))


def available() -> bool:
    """Whether this machine exposes the counters (Linux /proc)."""
    return os.path.exists("/proc/diskstats") and os.path.exists("/proc/meminfo")
