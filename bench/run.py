"""Run the Crossdock benchmark (``make bench``) or its smoke variant (``make bench-smoke``).

Examples::

    .venv/bin/python bench/run.py                      # everything, 3 reps (< 30 min)
    .venv/bin/python bench/run.py --smoke              # Crossdock + ceiling, ~1 min (CI)
    .venv/bin/python bench/run.py --systems ceiling,celery --reps 1 --duration 5

Peers that need installing (n8n, Node-RED) are installed first by
``bench/peers/install.sh`` (idempotent; ``--no-install`` skips). Systems run
round-robin: rep 1 of every system, then rep 2, ... Results go to
``--out`` (default ``bench/results``) as ``latest.md`` and ``latest.json``; a smoke
run writes ``smoke-latest.*`` instead (git-ignored) and a ``--tune-db-host`` run
``tuned-latest.*``, so neither replaces the full run's results that the README quotes.

Exit status: non-zero when a system could not be run at all, or -- in smoke
mode -- when any order was lost, duplicated or mis-mapped. Performance targets
are reported as PASS/FAIL lines and never fail the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from harness import report  # noqa: E402
from harness.hosttune import HostTuning  # noqa: E402
from harness.procstats import machine_seconds, steal_pct  # noqa: E402
from harness.runner import BenchConfig, Harness, result_dict  # noqa: E402
from harness.systems import ALL_NAMES, registry  # noqa: E402


def run_all(harness: Harness, runnable: list, reps: int, runs: list[dict]) -> None:
    """Repetition by repetition, every system in turn (round-robin); results appended to `runs`."""
    for rep in range(1, reps + 1):
        for s in runnable:
            t = time.monotonic()
            r = harness.run(s, rep)
            runs.append(result_dict(r))
            status = (
                f"{r.orders_per_s:8.1f} orders/s  ack p99@80% "
                f"{r.latency.get('80%', {}).get('ack_p99_ms')} ms  lost {r.lost} "
                f"dup {r.duplicated} wrong {r.wrong} errors {r.errors}"
                if r.ok
                else f"FAILED: {r.error}"
            )
            print(
                f"[bench] rep {rep}/{reps} {s.name:<17} {status}  ({time.monotonic() - t:.0f}s)",
                flush=True,
            )


def results_stem(smoke: bool, tuned: bool = False) -> str:
    """The file name of a run's results: a smoke run and a run on a tuned host keep their own, beside
    the full run's `latest` that the README quotes."""
    return "smoke-latest" if smoke else "tuned-latest" if tuned else "latest"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Crossdock benchmark harness")
    ap.add_argument("--systems", help=f"comma-separated subset of: {','.join(ALL_NAMES)}")
    ap.add_argument("--reps", type=int, help="repetitions (default 3; smoke 1)")
    ap.add_argument("--smoke", action="store_true", help="~1 min: Crossdock + ceiling, 1 rep")
    ap.add_argument("--duration", type=float, help="measured closed-loop seconds")
    ap.add_argument("--open-duration", type=float, help="seconds per open-loop rate")
    ap.add_argument("--warmup", type=float, help="closed-loop warm-up seconds")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    ap.add_argument("--no-install", action="store_true", help="don't run peers/install.sh")
    ap.add_argument("--report-only", type=Path, metavar="JSON", help="rebuild the report from a latest.json")
    ap.add_argument(
        "--tune-db-host",
        action="store_true",
        help="apply docs/operations.md's database-host settings for this run, then restore them (root, PG superuser)",
    )
    args = ap.parse_args(argv)
    if args.report_only:
        old = json.loads(args.report_only.read_text())
        doc = report.build(old["runs"], list(old["systems"]), old["config"], old["reps"], old.get("skipped", {}))
        doc.update({k: old[k] for k in ("machine", "date", "wall_s", "smoke", "host_tuning") if k in old})
        doc["targets"] = report.targets(doc["systems"])
        pj, pm = report.write(doc, args.out, results_stem(bool(doc.get("smoke")), bool(doc.get("host_tuning"))))
        print(f"[bench] rewrote {pm} and {pj}")
        return 0

    cfg = BenchConfig.smoke() if args.smoke else BenchConfig()
    cfg.concurrency = args.concurrency
    if args.duration is not None:
        cfg.duration = args.duration
    if args.open_duration is not None:
        cfg.open_duration = args.open_duration
    if args.warmup is not None:
        cfg.warmup = args.warmup
    reps = args.reps or (1 if args.smoke else 3)

    reg = registry()
    if args.systems:
        wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in ALL_NAMES]
        if unknown:
            ap.error(f"unknown system(s): {', '.join(unknown)}")
    elif args.smoke:
        wanted = [n for n in reg if reg[n].is_crossdock] + ["ceiling"]
    else:
        wanted = list(ALL_NAMES)

    skipped: dict[str, str] = {}
    for name in wanted:
        if name not in reg:
            skipped[name] = "not registered (Crossdock plug-in not enabled, or crossdock.engine not importable)"
    selected = [reg[n] for n in wanted if n in reg]

    peers = sorted({p for s in selected for p in s.install_peers})
    if peers and not args.no_install:
        print(f"[bench] installing peers: {' '.join(peers)}", flush=True)
        rc = subprocess.call(["bash", str(BENCH / "peers" / "install.sh"), *peers])
        if rc != 0:
            print(f"[bench] install.sh exited {rc}; affected systems will be skipped", flush=True)

    runnable = []
    for s in selected:
        why = s.unavailable()
        if why:
            skipped[s.name] = why
        else:
            runnable.append(s)
    for name, why in skipped.items():
        print(f"[bench] skip {name}: {why}", flush=True)

    t0 = time.monotonic()
    steal0 = machine_seconds()[1]
    runs: list[dict] = []
    tuning = contextlib.nullcontext(None)
    if args.tune_db_host:
        uses_pg = any(getattr(s, "backend", "") == "pg" or s.name == "n8n_pg" for s in runnable)
        tuning = HostTuning(postgres=uses_pg)
        # `timeout` or a CI cancel sends SIGTERM: exit through the `with` so the host is restored.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    harness = Harness(cfg)
    try:
        with tuning as tuned:
            if tuned is not None:
                print(f"[bench] tuned for this run: {'; '.join(tuned.applied)}", flush=True)
            run_all(harness, runnable, reps, runs)
    finally:
        harness.close()

    doc = report.build(runs, [s.name for s in runnable], asdict(cfg), reps, skipped)
    doc["host_tuning"] = tuned.applied if tuned is not None else []
    doc["wall_s"] = round(time.monotonic() - t0, 1)
    doc["machine"]["steal_pct"] = steal_pct(machine_seconds()[1] - steal0, doc["wall_s"])
    doc["smoke"] = args.smoke
    pj, pm = report.write(doc, args.out, results_stem(args.smoke, tuned is not None))
    print(report.markdown(doc))
    print(f"[bench] wrote {pm} and {pj} in {doc['wall_s']:.0f}s", flush=True)

    failed = [n for n, row in doc["systems"].items() if row.get("orders_per_s") is None]
    if not runnable:
        print("[bench] nothing to run", flush=True)
        return 1
    if failed:
        print(f"[bench] systems that did not run: {', '.join(failed)}", flush=True)
        return 1
    if args.smoke:
        bad = {
            n: (row["lost"], row["duplicated"], row.get("wrong", 0))
            for n, row in doc["systems"].items()
            if row["lost"] or row["duplicated"] or row.get("wrong") or not row["orders_per_s"]
        }
        if bad:
            print(f"[bench] SMOKE FAILED (lost, duplicated, wrong): {bad}", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
