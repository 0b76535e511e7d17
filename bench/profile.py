"""Where an order's CPU and WAL go: Crossdock on PostgreSQL at fixed open-loop rates, or a closed loop.

The benchmark (`bench/run.py`) reports one CPU figure per system. This splits it by process, for the
profiles in docs/performance.md: the API, each worker process, and the PostgreSQL backends serving
each (told apart by their `application_name`, `crossdock-api` / `crossdock-worker`), plus the WAL
written per order (`pg_current_wal_lsn` before and after). One system instance serves every phase.

Examples::

    .venv/bin/python bench/profile.py --rates 400,1000,1500            # open loop, 10 s per rate
    .venv/bin/python bench/profile.py --closed --workers 2 --seconds 12  # closed loop at concurrency 32
    .venv/bin/python bench/profile.py --rates 1500 --py-spy              # plus py-spy flame data per process

Run it on a quiet machine, alternate the variants you compare, and read the medians: the figures
move by ±10% from run to run on a 2-core host.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from harness import loadgen  # noqa: E402
from harness.crossdock_system import CrossdockSystem  # noqa: E402
from harness.orders import SECRET  # noqa: E402
from harness.procstats import process_cpu_seconds  # noqa: E402
from harness.report import percentile  # noqa: E402
from harness.runner import BenchConfig, Harness  # noqa: E402
from harness.systems import PEERS_DIR, RunContext, free_port, pg_available, psql, remove_tree  # noqa: E402


def backends(dbname: str) -> dict[int, str]:
    """PostgreSQL backend pid -> application_name, for the connections to `dbname`."""
    out = psql(f"SELECT pid, application_name FROM pg_stat_activity WHERE datname = '{dbname}'")
    found = {}
    for line in out.splitlines():
        pid, _, app = line.partition("\t")
        found[int(pid)] = app or "?"
    return found


def wal_lsn() -> str:
    return psql("SELECT pg_current_wal_lsn()")


def wal_bytes(lsn0: str, lsn1: str) -> int:
    return int(psql(f"SELECT pg_wal_lsn_diff('{lsn1}', '{lsn0}')"))


class Split:
    """CPU seconds per named process over one phase (PostgreSQL backends grouped by application_name)."""

    def __init__(self, procs: dict[str, int], dbname: str | None) -> None:
        self.procs = procs
        self.backends = backends(dbname) if dbname else {}
        self.before = self._read()

    def _read(self) -> dict[str, float]:
        seen: dict[str, float] = {name: process_cpu_seconds(pid) for name, pid in self.procs.items()}
        for pid, app in self.backends.items():
            key = "pg:" + app.removeprefix("crossdock-")
            seen[key] = seen.get(key, 0.0) + process_cpu_seconds(pid)
        return seen

    def per_order_us(self, orders: int) -> dict[str, float]:
        after = self._read()
        return {k: round((after[k] - self.before[k]) / max(orders, 1) * 1e6) for k in sorted(after)}


def _py_spy(procs: dict[str, int], seconds: float, tag: str, out_dir: Path) -> list[subprocess.Popen]:
    exe = shutil.which("py-spy")
    if exe is None:
        raise SystemExit("--py-spy: py-spy is not on PATH (pip install py-spy)")
    return [
        subprocess.Popen(
            [exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200", "-f", "raw", "--nonblocking",
             "-o", str(out_dir / f"{tag}-{name}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in procs.items()
    ]  # fmt: skip


def measure(args: argparse.Namespace) -> list[dict]:
    """Start Crossdock (PostgreSQL or SQLite, N workers), warm it up, run the phases; one result per phase."""
    harness = Harness(BenchConfig())
    pg = args.backend == "pg"
    name = f"crossdock_pg_{args.workers}w" if pg else "crossdock_sqlite"
    system = CrossdockSystem(name, args.backend, args.workers)
    workdir = PEERS_DIR / "runs" / "profile"
    remove_tree(workdir)
    workdir.mkdir(parents=True)
    ctx = RunContext(harness.erp_url, SECRET, free_port(), workdir, PEERS_DIR / "logs" / "profile.log", "profile")
    results = []
    try:
        system.start(ctx)
        harness.wait_ready(system)
        pids = system.pids()
        procs = {"api": pids[0], **{f"worker{i}": pid for i, pid in enumerate(pids[1:], start=1)}}
        warm = loadgen.Phase(url=system.webhook_url, mode="closed", duration=args.warmup, warmup=0, id_base=10**9)
        loadgen.run_phase(warm, harness.delivered)
        time.sleep(1.0)
        phases = [("closed", None)] if args.closed else [("open", r) for r in args.rates]
        for i, (mode, rate) in enumerate(phases, start=1):
            id_base = 10**9 + i * loadgen.PHASE_SPAN
            split, delivered0 = Split(procs, "bench_crossdock" if pg else None), harness.stats()["orders"]
            lsn0 = wal_lsn() if pg else None
            spies = _py_spy(procs, args.seconds, f"{mode}-{rate or 'closed'}", args.out) if args.py_spy else []
            if mode == "closed":
                phase = loadgen.Phase(url=system.webhook_url, mode="closed", duration=args.seconds, warmup=0,
                                      id_base=id_base, concurrency=args.concurrency,
                                      max_backlog=args.max_backlog)  # fmt: skip
                ph = loadgen.run_phase(phase, harness.delivered)
            else:
                phase = loadgen.Phase(url=system.webhook_url, mode="open", duration=args.seconds, rate=rate,
                                      id_base=id_base)  # fmt: skip
                ph = loadgen.run_phase(phase)
            acked = sum(1 for r in ph.rows if 200 <= r[3] < 300)
            harness.drain(delivered0 + acked)  # this phase's orders delivered (or progress stopped)
            for spy in spies:
                spy.wait()
            acks = [(r[2] - r[1]) / 1e6 for r in ph.rows if 200 <= r[3] < 300]
            orders = len(acks)
            per = split.per_order_us(orders)
            results.append(
                {
                    "mode": mode,
                    "offered_per_s": rate,
                    "acked_per_s": round(orders / max((ph.t_end_ns - ph.t_start_ns) / 1e9, 1e-9), 1),
                    "delivered": harness.stats()["orders"] - delivered0,
                    "ack_p50_ms": round(percentile(acks, 50) or 0, 2),
                    "ack_p99_ms": round(percentile(acks, 99) or 0, 2),
                    "cpu_us_per_order": per,
                    "cpu_us_per_order_total": sum(per.values()),
                    "wal_bytes_per_order": round(wal_bytes(lsn0, wal_lsn()) / max(orders, 1)) if lsn0 else None,
                }
            )
            time.sleep(2.0)
    finally:
        system.stop()
        harness.close()
        remove_tree(workdir)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[400.0, 1000.0, 1500.0],
                    help="open-loop rates, orders/s (default 400,1000,1500)")  # fmt: skip
    ap.add_argument("--closed", action="store_true", help="one closed-loop phase instead of the rates")
    ap.add_argument("--concurrency", type=int, default=32, help="closed-loop concurrency (default 32)")
    ap.add_argument("--max-backlog", type=int, default=BenchConfig.max_backlog,
                    help="closed loop: pause posting while this many acked orders are undelivered (as the benchmark)")  # fmt: skip
    ap.add_argument("--backend", choices=("pg", "sqlite"), default="pg",
                    help="Crossdock's database: PostgreSQL (default) or the embedded SQLite file")  # fmt: skip
    ap.add_argument("--workers", type=int, default=1, help="crossdock worker processes (default 1)")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds per phase (default 10)")
    ap.add_argument("--warmup", type=float, default=3.0, help="closed-loop warm-up seconds (default 3)")
    ap.add_argument("--py-spy", action="store_true", help="record each process with py-spy (raw, into --out)")
    ap.add_argument("--out", type=Path, default=Path("/tmp"), help="where --py-spy writes (default /tmp)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    why = pg_available() if args.backend == "pg" else None
    if why:
        print(f"[profile] {why}", file=sys.stderr)
        return 1
    results = measure(args)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        load = "closed loop" if r["mode"] == "closed" else f"{r['offered_per_s']:.0f}/s offered"
        split = ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_us_per_order"].items())
        print(
            f"{load}: {r['acked_per_s']:.0f}/s acked, ack p50 {r['ack_p50_ms']} / p99 {r['ack_p99_ms']} ms | "
            f"CPU µs/order {split} = {r['cpu_us_per_order_total']:.0f}"
            + (f" | WAL {r['wal_bytes_per_order']} B/order" if r["wal_bytes_per_order"] is not None else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
