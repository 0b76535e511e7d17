"""CPU time and memory of a system's process tree, read from /proc.

* CPU: ``utime + stime`` (fields 14/15 of ``/proc/<pid>/stat``) summed over the
  live process tree, plus ``cutime + cstime`` of the roots (children they already
  reaped). :class:`ProcSampler` samples it in the background every 0.2 s and
  interpolates the CPU seconds spent inside a measured window.
* Memory: the same sampler sums ``VmRSS`` over the tree every 0.2 s and keeps
  the peak (per-process ``VmHWM`` peaks at different times, so they can't be
  summed meaningfully).

A tree is the root pids the harness started plus every descendant (found by
walking ``PPid``), plus optionally all processes whose ``comm`` matches a name
(e.g. ``postgres`` for a PostgreSQL-backed system, counted for CPU only since
that server is shared and was not started by the harness).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Self

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode()
    except OSError:
        return None
    # comm may contain spaces/parens: split after the last ')'
    rparen = data.rindex(")")
    comm = data[data.index("(") + 1 : rparen]
    return [str(pid), comm, *data[rparen + 2 :].split()]


def _all_stats() -> dict[int, list[str]]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                out[int(name)] = st
    return out


def tree(roots: Iterable[int], comms: Iterable[str] = (), stats: dict | None = None) -> set[int]:
    """Pids of ``roots`` and all their descendants (plus processes named in ``comms``)."""
    stats = stats if stats is not None else _all_stats()
    children: dict[int, list[int]] = {}
    for pid, st in stats.items():
        children.setdefault(int(st[3]), []).append(pid)  # field 4: ppid
    comms = set(comms)
    found = {pid for pid, st in stats.items() if st[1] in comms}
    stack = [r for r in roots if r in stats]
    seen: set[int] = set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        found.add(pid)
        stack.extend(children.get(pid, ()))
    return found


def cpu_seconds(roots: Iterable[int], comms: Iterable[str] = ()) -> float:
    """Total user+system CPU seconds of the tree (incl. reaped children of roots)."""
    roots = list(roots)
    stats = _all_stats()
    ticks = 0
    for pid in tree(roots, comms, stats):
        st = stats[pid]
        ticks += int(st[13]) + int(st[14])  # utime, stime
        if pid in roots:
            ticks += int(st[15]) + int(st[16])  # cutime, cstime
    return ticks / CLK_TCK


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (its own, not its children's); 0 when it is gone."""
    st = _stat(pid)
    return (int(st[13]) + int(st[14])) / CLK_TCK if st else 0.0


def machine_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of all cores since boot, from the ``cpu`` line of ``/proc/stat``.

    *busy* is user + nice + system + irq + softirq (not idle, iowait or steal); *steal* is time
    the virtual CPUs were ready to run but the hypervisor ran something else: a noisy host.
    """
    with open("/proc/stat") as f:
        return cpu_line_seconds(f.readline())


def cpu_line_seconds(line: str) -> tuple[float, float]:
    """(busy, steal) seconds of one ``cpu`` line of ``/proc/stat`` (fields in clock ticks)."""
    fields = [int(x) for x in line.split()[1:]]
    fields += [0] * (8 - len(fields))  # old kernels end before steal
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    return busy / CLK_TCK, fields[7] / CLK_TCK


def steal_pct(steal_s: float, window_s: float) -> float:
    """Steal seconds over a window as a percentage of all the machine's cores."""
    return round(100 * steal_s / (max(window_s, 1e-9) * (os.cpu_count() or 1)), 1)


def rss_bytes(pids: Iterable[int]) -> int:
    """Sum of current resident set sizes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


class BackgroundSampler(ABC):
    """A thread calling :meth:`sample` every ``interval`` seconds while the ``with`` block runs
    (once more on entry and on exit, so a window is always covered at both ends)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    @abstractmethod
    def sample(self) -> None:
        """Take one sample (called from the thread, and on entry and exit)."""

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


class ProcSampler(BackgroundSampler):
    """Background thread sampling (time, CPU seconds, summed RSS) of a system.

    CPU covers the tree plus processes named in ``comms``; RSS covers only the
    tree (the processes the harness started). :meth:`cpu_between` interpolates
    CPU seconds spent in a window given in ``time.monotonic_ns()`` units.
    """

    def __init__(self, roots: Iterable[int], comms: Iterable[str] = (), interval: float = 0.2):
        super().__init__(interval)
        self.roots = list(roots)
        self.comms = tuple(comms)
        self.samples: list[tuple[int, float, float, float]] = []  # (t_ns, tree CPU, machine busy, steal)
        self.peak_rss = 0

    def sample(self) -> None:
        stats = _all_stats()
        ticks = 0
        for pid in tree(self.roots, self.comms, stats):
            st = stats[pid]
            ticks += int(st[13]) + int(st[14])
            if pid in self.roots:
                ticks += int(st[15]) + int(st[16])
        self.samples.append((time.monotonic_ns(), ticks / CLK_TCK, *machine_seconds()))
        self.peak_rss = max(self.peak_rss, rss_bytes(tree(self.roots, (), stats)))

    def _at(self, t_ns: int, col: int) -> float:
        s = self.samples
        if not s:
            return 0.0
        if t_ns <= s[0][0]:
            return s[0][col]
        for a, b in itertools.pairwise(s):
            if a[0] <= t_ns <= b[0]:
                return a[col] + (b[col] - a[col]) * (t_ns - a[0]) / max(1, b[0] - a[0])
        return s[-1][col]

    def cpu_between(self, t0_ns: int, t1_ns: int) -> float:
        """CPU seconds the system spent between two monotonic_ns instants."""
        return max(0.0, self._at(t1_ns, 1) - self._at(t0_ns, 1))

    def machine_between(self, t0_ns: int, t1_ns: int) -> float:
        """CPU seconds the whole machine was busy between two instants (noise check)."""
        return max(0.0, self._at(t1_ns, 2) - self._at(t0_ns, 2))

    def steal_between(self, t0_ns: int, t1_ns: int) -> float:
        """CPU seconds the hypervisor withheld from the machine's cores between two instants."""
        return max(0.0, self._at(t1_ns, 3) - self._at(t0_ns, 3))
