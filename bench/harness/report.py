"""Percentiles, aggregation over repetitions, targets, and the Markdown/JSON report.

Per system the report gives the **median over repetitions** of every figure
(throughput, latencies, CPU/order, RSS) and the **sum over repetitions** of
the correctness counters (lost, duplicated, wrong, errors): one lost order in
any repetition is a finding, not noise.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

METRICS = [
    "orders_per_s",
    "ack_p50_ms",
    "ack_p99_ms",
    "e2e_p50_ms",
    "e2e_p99_ms",
    "cpu_s_per_order",
    "rss_mb",
    "lost",
    "duplicated",
]
COUNTERS = ["lost", "duplicated", "wrong", "errors", "replays"]
LATENCY_KEY = "80%"  # the open-loop rate whose latencies fill the main columns
LAG_LIMIT_MS = 20.0  # generator lag p99 above this: the harness/machine limited that rate


def percentile(values: Sequence[float], q: float) -> float | None:
    """q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def _median(xs: Iterable[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def aggregate(runs: list[dict], latency_key: str = LATENCY_KEY) -> dict:
    """Fold the runs of one system into its report row."""
    ok = [r for r in runs if r["ok"]]
    row: dict = {"reps": len(ok), "failed_reps": len(runs) - len(ok)}
    if not ok:
        row.update({m: None for m in METRICS})
        row["error"] = runs[-1]["error"] if runs else "not run"
        return row
    for m in (
        "orders_per_s",
        "cpu_s_per_order",
        "rss_mb",
        "closed_ack_p50_ms",
        "closed_ack_p99_ms",
        "startup_s",
        "sut_cores",
        "harness_cpu_s_per_order",
        "machine_busy_cores",
        "steal_pct",
    ):
        row[m] = _median(r.get(m) for r in ok)
    keys = sorted({k for r in ok for k in r["latency"]})
    lat = {}
    for k in keys:
        lat[k] = {
            f: _median(r["latency"].get(k, {}).get(f) for r in ok)
            for f in ("rate", "ack_p50_ms", "ack_p99_ms", "e2e_p50_ms", "e2e_p99_ms", "send_lag_p99_ms")
        }
    row["latency"] = lat
    main = lat.get(latency_key) or (lat[keys[-1]] if keys else {})
    for f in ("ack_p50_ms", "ack_p99_ms", "e2e_p50_ms", "e2e_p99_ms", "send_lag_p99_ms"):
        row[f] = main.get(f)
    for c in COUNTERS:
        row[c] = sum(r[c] for r in ok)
    row["sent"] = sum(r["sent"] for r in ok)
    if row["failed_reps"]:
        row["error"] = next(r["error"] for r in runs if not r["ok"])
    return {m: row.get(m) for m in METRICS} | row


def reference_name(systems: dict) -> str | None:
    """crossdock_pg_1w when present, else ceiling, else None."""
    for name in ("crossdock_pg_1w", "ceiling"):
        if systems.get(name, {}).get("orders_per_s"):
            return name
    return None


def targets(systems: dict) -> list[dict]:
    """The issue's targets, each PASS / FAIL / SKIP (never fails the run)."""
    out: list[dict] = []

    def thr(name: str) -> float | None:
        return (systems.get(name) or {}).get("orders_per_s")

    def ratio_target(a: str, b: str, k: float) -> None:
        label = f"{a} >= {k:g}x {b} (orders/s)"
        va, vb = thr(a), thr(b)
        if not va or not vb:
            missing = " and ".join(n for n, v in ((a, va), (b, vb)) if not v)
            out.append({"target": label, "status": "SKIP", "detail": f"no result for {missing}"})
            return
        ratio = va / vb
        out.append(
            {
                "target": label,
                "status": "PASS" if ratio >= k else "FAIL",
                "detail": f"{va:.0f} vs {vb:.0f} = {ratio:.2f}x",
            }
        )

    ratio_target("crossdock_pg_1w", "n8n_sqlite", 10)
    ratio_target("crossdock_pg_1w", "celery", 1.0)
    ratio_target("crossdock_pg_1w", "nodered", 1.0)
    ratio_target("crossdock_pg_2w", "ceiling", 0.5)
    crossdock = [n for n in systems if n.startswith("crossdock")]
    if not crossdock:
        out.append(
            {
                "target": "Crossdock ack p99 < 25 ms at 80% of own peak",
                "status": "SKIP",
                "detail": "Crossdock not plugged in",
            }
        )
        out.append(
            {"target": "Crossdock 0 lost / 0 duplicated", "status": "SKIP", "detail": "Crossdock not plugged in"}
        )
    for n in crossdock:
        row = systems[n]
        p99 = (row.get("latency") or {}).get("80%", {}).get("ack_p99_ms")
        out.append(
            {
                "target": f"{n} ack p99 < 25 ms at 80% of own peak",
                "status": "SKIP" if p99 is None else ("PASS" if p99 < 25 else "FAIL"),
                "detail": "no result" if p99 is None else f"{p99:.1f} ms",
            }
        )
        if row.get("lost") is None:
            out.append({"target": f"{n} 0 lost / 0 duplicated", "status": "SKIP", "detail": "no result"})
        else:
            bad = row["lost"] + row["duplicated"] + row.get("wrong", 0)
            out.append(
                {
                    "target": f"{n} 0 lost / 0 duplicated",
                    "status": "PASS" if bad == 0 else "FAIL",
                    "detail": f"lost {row['lost']}, duplicated {row['duplicated']}, wrong {row.get('wrong', 0)}",
                }
            )
    return out


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": _cmd(["node", "--version"]),
        "postgres": _cmd(["psql", "--version"]),
        "redis": _cmd(["redis-server", "--version"]).split(" sha=")[0],
    }


def _fmt(v: float | None, nd: int = 1) -> str:
    if v is None:
        return "–"
    return f"{v:,.{nd}f}"


def _dag(lag_ms: float | None) -> str:
    """Mark figures measured while the load generator itself ran late."""
    return " †" if lag_ms is not None and lag_ms > LAG_LIMIT_MS else ""


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1000


def _ratio(v: float | None, ref: float | None, invert: bool = False) -> str:
    if not v or not ref:
        return "–"
    return f"{(ref / v if invert else v / ref):.2f}×"


def markdown(doc: dict) -> str:
    systems = doc["systems"]
    ref = doc.get("reference")
    refrow = systems.get(ref, {}) if ref else {}
    cfg = doc.get("config", {})
    m = doc["machine"]
    lines = [
        "# Crossdock benchmark",
        "",
        f"{doc['date']} · {m.get('cores')} cores ({m.get('cpu')}) · {m.get('mem_gb')} GB · "
        f"Python {m.get('python')} · Node {m.get('node')}"
        + (f" · host steal {m['steal_pct']:g}% of CPU over the run" if m.get("steal_pct") is not None else ""),
        "",
        f"Closed loop: concurrency {cfg.get('concurrency')}, {cfg.get('warmup')} s warm-up + "
        f"{cfg.get('duration')} s measured. Latencies: open loop at 80% of each system's own "
        f"closed-loop peak, {cfg.get('open_duration')} s. Medians of {doc.get('reps')} "
        "repetitions (round-robin); lost/duplicated are totals over all repetitions.",
        f"Reference column: `{ref}`." if ref else "No reference system ran.",
        (
            "Database host tuned for this run (`--tune-db-host`, docs/operations.md): "
            + "; ".join(doc["host_tuning"])
            + "."
            if doc.get("host_tuning")
            else "The machine's own kernel and PostgreSQL settings (no `--tune-db-host`)."
        ),
        "",
        "| system | orders/s | vs ref | ack p50 ms | ack p99 ms | e2e p50 ms | e2e p99 ms "
        "| CPU ms/order | CPU vs ref | peak RSS MB | lost | dup |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in systems.items():
        if row.get("orders_per_s") is None:
            lines.append(f"| {name} | failed: {row.get('error', '?')[:80]} |" + " |" * 10)
            continue
        cpu = row.get("cpu_s_per_order")
        lines.append(
            "| {n} | {t} | {tr} | {a50} | {a99} | {e50} | {e99} | {c} | {cr} | {rss} | {l} | {d} |".format(
                n=name,
                t=_fmt(row["orders_per_s"], 0),
                tr=_ratio(row["orders_per_s"], refrow.get("orders_per_s")),
                a50=_fmt(row["ack_p50_ms"], 2),
                a99=_fmt(row["ack_p99_ms"], 2) + _dag(row.get("send_lag_p99_ms")),
                e50=_fmt(row["e2e_p50_ms"], 2),
                e99=_fmt(row["e2e_p99_ms"], 2) + _dag(row.get("send_lag_p99_ms")),
                c=_fmt(cpu * 1000 if cpu is not None else None, 2),
                cr=_ratio(cpu, refrow.get("cpu_s_per_order")),
                rss=_fmt(row["rss_mb"], 0),
                l=row["lost"],
                d=row["duplicated"],
            )
        )
    lines += [
        "",
        "`vs ref` is throughput ÷ the reference's; `CPU vs ref` is CPU per order ÷ the "
        "reference's (lower is leaner). † = the load generator ran late at that rate (generator "
        f"lag p99 > {LAG_LIMIT_MS:g} ms): the 2-core machine, not only the system, limited it.",
        "",
        "## Latency by offered rate (open loop)",
        "",
        "| system | load | offered/s | ack p50 | ack p99 | e2e p50 | e2e p99 | generator lag p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in systems.items():
        for k, lat in (row.get("latency") or {}).items():
            lines.append(
                f"| {name} | {k} | {_fmt(lat.get('rate'), 0)} | {_fmt(lat.get('ack_p50_ms'), 2)}"
                f" | {_fmt(lat.get('ack_p99_ms'), 2)} | {_fmt(lat.get('e2e_p50_ms'), 2)}"
                f" | {_fmt(lat.get('e2e_p99_ms'), 2)}"
                f" | {_fmt(lat.get('send_lag_p99_ms'), 2)}{_dag(lat.get('send_lag_p99_ms'))} |"
            )
    lines += [
        "",
        "Latencies in ms, from the scheduled send time. *Generator lag* is how late the load "
        "generator itself started requests; when it is large the harness, not the system, "
        "limited that rate.",
        "",
        "## Other counters",
        "",
        "| system | reps ok | start-up s | closed-loop ack p50 / p99 ms | wrong | webhook errors "
        "| key replays | orders sent | SUT cores | machine busy cores | host steal % | harness CPU ms/order |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in systems.items():
        lines.append(
            f"| {name} | {row.get('reps')}/{row.get('reps', 0) + row.get('failed_reps', 0)}"
            f" | {_fmt(row.get('startup_s'))}"
            f" | {_fmt(row.get('closed_ack_p50_ms'), 2)} / {_fmt(row.get('closed_ack_p99_ms'), 2)}"
            f" | {row.get('wrong', '–')} | {row.get('errors', '–')} | {row.get('replays', '–')}"
            f" | {row.get('sent', '–')} | {_fmt(row.get('sut_cores'), 2)}"
            f" | {_fmt(row.get('machine_busy_cores'), 2)}"
            f" | {_fmt(row.get('steal_pct'))}"
            f" | {_fmt(_ms(row.get('harness_cpu_s_per_order')), 3)} |"
        )
    lines += [
        "",
        "SUT cores, machine busy cores and host steal are averages over the measured closed-loop "
        "window; machine busy well above SUT cores + harness load means something else was running. "
        "Host steal is CPU time the hypervisor gave to other guests while this machine's cores "
        "wanted to run (`/proc/stat`), as a share of all cores: a noisy host.",
        "",
    ]
    lines += _episodes_section(doc.get("runs", []))
    lines += [
        "## Targets",
        "",
    ]
    for t in doc.get("targets", []):
        lines.append(f"- **{t['status']}** {t['target']} — {t['detail']}")
    if doc.get("skipped"):
        lines += ["", "## Not run", ""]
        lines += [f"- {n}: {why}" for n, why in doc["skipped"].items()]
    lines += ["", "Method and caveats: `docs/benchmark.md`.", ""]
    return "\n".join(lines)


def _episodes_section(runs: list[dict], key: str = LATENCY_KEY) -> list[str]:
    """Per repetition at `key`: the acks over the target, in episodes, and the disk writes beside them."""
    rows = [r for r in runs if r.get("ok") and (r.get("latency") or {}).get(key, {}).get("io")]
    if not rows:
        return []
    lines = [
        f"## Slow acknowledgements at {key} (open loop), per repetition",
        "",
        "| system | rep | ack p99 ms | acks > 25 ms | episodes | their acks on a disk write burst "
        "| disk MB/s | dirty peak MB | largest episodes (start s: span ms, acks, worst ms, MB written) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lat = r["latency"][key]
        io = lat["io"]
        share = f"{io['slow_acks_io']} ({100 * io['slow_acks_io'] / io['slow_acks']:.0f}%)" if io["slow_acks"] else "–"
        top = sorted(io["episodes"], key=lambda e: -e["acks"])[:3]
        eps = "; ".join(
            f"{e['at_s']:g}: {e['span_ms']:.0f}, {e['acks']}, {e['worst_ms']:.0f}, {e['disk_mb']:g}"
            + (" (burst)" if e["io"] else "")
            for e in sorted(top, key=lambda e: e["at_s"])
        )
        lines.append(
            f"| {r['system']} | {r['rep']} | {_fmt(lat.get('ack_p99_ms'), 1)} | {io['slow_acks']}"
            f" | {io['episode_count']} | {share} | {_fmt(io['disk_write_mb_s'])} | {_fmt(io['dirty_peak_mb'], 0)}"
            f" | {eps or '–'} |"
        )
    lines += [
        "",
        "An episode is a run of acks slower than 25 ms sent less than 100 ms apart. *On a disk write "
        "burst*: at least 8 MB (and 4x the phase's median) written to the disk in some 100 ms between "
        "300 ms before the episode and its end (`bench/harness/iostats.py`): the kernel writing back "
        "dirty table pages, a WAL segment being created, a checkpoint. *Dirty* is the page cache not "
        "yet written (`/proc/meminfo`). MB are 2^20 bytes. See docs/performance.md, profile 14.",
        "",
    ]
    return lines


def build(runs: list[dict], order: list[str], config: dict, reps: int, skipped: dict[str, str]) -> dict:
    systems = {}
    for name in order:
        mine = [r for r in runs if r["system"] == name]
        if mine:
            systems[name] = aggregate(mine)
    doc = {
        "systems": systems,
        "machine": machine_info(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "reference": reference_name(systems),
        "reps": reps,
        "config": config,
        "targets": targets(systems),
        "skipped": skipped,
        "runs": runs,
    }
    return doc


def write(doc: dict, out_dir: Path, stem: str = "latest") -> tuple[Path, Path]:
    """`<stem>.json` and `<stem>.md` in `out_dir`, each replaced whole (a reader never sees half)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pj, pm = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    for path, text in ((pj, json.dumps(doc, indent=2) + "\n"), (pm, markdown(doc))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return pj, pm
