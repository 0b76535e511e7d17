"""Engine throughput benchmark (`make bench-engine`).

For SQLite (1 worker process) and PostgreSQL (1 and 2 worker processes): measure the database's
single-connection INSERT+COMMIT rate, then run N runs of a 5-step flow of trivial steps (and M runs
of a 5-step flow with one HTTP step against a local server) through real worker processes.
Prints runs/s, steps/s, p50/p99 run latency, worker CPU seconds per step and the ratio of steps/s
to the commit rate; writes bench/results/engine-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import crossdock.models  # noqa: E402, F401
from crossdock.bootstrap import build_container  # noqa: E402
from crossdock.core.context import Actor  # noqa: E402
from crossdock.core.db import make_engine  # noqa: E402
from crossdock.core.migrate import upgrade  # noqa: E402
from crossdock.core.settings import Settings  # noqa: E402
from crossdock.engine import service  # noqa: E402
from crossdock.engine.core import engine_of  # noqa: E402
from crossdock.engine.journal import JOURNAL, RUNS  # noqa: E402
from crossdock.engine.schemas import FlowCreate  # noqa: E402
from crossdock.engine.service import new_run_row  # noqa: E402
from crossdock.tenants import service as tenants  # noqa: E402
from crossdock.tenants.schemas import MerchantCreate, PartnerCreate  # noqa: E402

PG_ADMIN = os.environ.get("CROSSDOCK_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
SYSTEM = Actor.system()
TRIVIAL = {"steps": [{"id": f"s{i}", "type": "map", "output": {"i": i, "id": "=input.i"}} for i in range(5)]}


def http_flow(url: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"id": f"m{i}", "type": "map", "output": {"i": i}} for i in range(4)]
    steps.insert(
        2,
        {
            "id": "post",
            "type": "action",
            "action": "http.request",
            "key": "=input.i",
            "input": {"url": url, "json": {"i": "=input.i"}},
        },
    )
    return {"steps": steps}


async def commit_rate(url: str, n: int) -> float:
    engine = make_engine(url)
    async with engine.connect() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS bench_commit (id INTEGER PRIMARY KEY, v TEXT)"))
        await conn.commit()
        t0 = time.perf_counter()
        for i in range(n):
            await conn.execute(text("INSERT INTO bench_commit (id, v) VALUES (:i, 'x')"), {"i": i})
            await conn.commit()
        elapsed = time.perf_counter() - t0
        await conn.execute(text("DROP TABLE bench_commit"))
        await conn.commit()
    await engine.dispose()
    return n / elapsed


async def fresh_database(kind: str, tmp: Path) -> str:
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}"
    else:
        name = f"crossdock_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = make_engine(PG_ADMIN)
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    await upgrade(engine)
    await engine.dispose()
    return url


async def drop_database(url: str) -> None:
    if url.startswith("sqlite"):
        return
    admin = make_engine(PG_ADMIN)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    await admin.dispose()


def start_http_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "import uvicorn\nfrom fastapi import FastAPI\napp=FastAPI()\n"
        "@app.post('/effect')\nasync def e(): return {'ok': True}\n"
        f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='error')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(1.5)
    return proc, f"http://127.0.0.1:{port}/effect"


async def scenario(url: str, workers: int, runs: int, definition: dict[str, Any], key: str) -> dict[str, float]:
    container = build_container(Settings(database_url=url, log_json=False))
    engine = engine_of(container)
    async with container.db.session(SYSTEM.scope) as s:
        partner = await tenants.create_partner(s, SYSTEM, PartnerCreate(name=f"Bench {key}"))
        merchant = await tenants.create_merchant(s, SYSTEM, MerchantCreate(partner_id=partner.id, name=f"M {key}"))
        flow, version = await service.create_flow(
            s, SYSTEM, engine, FlowCreate(merchant_id=merchant.id, key=key, name=key, definition=definition)
        )
        await service.publish_version(s, SYSTEM, engine, flow.id, 1)
    cmd = [
        sys.executable,
        "-m",
        "crossdock.engine.worker_main",
        "--database-url",
        url,
        "--concurrency",
        "200",
        "--claim-batch",
        "100",
        "--merchant-concurrency",
        "100000",
        "--poll-seconds",
        "0.01",
    ]
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [subprocess.Popen([*cmd, *([] if i == 0 else ["--no-scheduler"])], cwd=ROOT) for i in range(workers)]  # noqa: ASYNC220
    await asyncio.sleep(2.0)  # workers up and polling
    rows = [
        new_run_row(flow.id, version.id, merchant.partner_id, merchant.id, {"i": i}, {"kind": "bench"}, None)
        for i in range(runs)
    ]
    async with container.db.engine.begin() as conn:
        for i in range(0, runs, 1000):
            await conn.execute(RUNS.insert(), rows[i : i + 1000])
    t0 = time.perf_counter()
    while True:
        async with container.db.engine.connect() as conn:
            left = (
                await conn.execute(
                    select(func.count())
                    .select_from(RUNS)
                    .where(RUNS.c.flow_id == flow.id, RUNS.c.status != "succeeded")
                )
            ).scalar()
        if not left:
            break
        if time.perf_counter() - t0 > 600:
            raise RuntimeError("benchmark did not finish in 10 minutes")
        await asyncio.sleep(0.02)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(30)
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    async with container.db.engine.connect() as conn:
        times = (
            await conn.execute(select(RUNS.c.created_at, RUNS.c.finished_at).where(RUNS.c.flow_id == flow.id))
        ).all()
        steps = (
            await conn.execute(
                select(func.count())
                .select_from(JOURNAL)
                .join(RUNS, RUNS.c.id == JOURNAL.c.run_id)
                .where(RUNS.c.flow_id == flow.id)
            )
        ).scalar() or 0
    await engine.close()
    await container.close()
    start = min(t[0] for t in times)
    end = max(t[1] for t in times)
    duration = (end - start).total_seconds()
    lat = sorted((t[1] - t[0]).total_seconds() * 1000 for t in times)
    cpu = (usage_after.ru_utime + usage_after.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime)
    return {
        "runs": runs,
        "steps": steps,
        "seconds": round(duration, 3),
        "runs_per_s": round(runs / duration, 1),
        "steps_per_s": round(steps / duration, 1),
        "p50_ms": round(lat[len(lat) // 2], 1),
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 1),
        "cpu_ms_per_step": round(cpu * 1000 / max(1, steps), 3),
    }


async def main() -> tuple[dict[str, Any], str]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5000, help="Runs of the trivial 5-step flow per configuration.")
    ap.add_argument("--http-runs", type=int, default=1000, help="Runs of the flow with an HTTP step.")
    ap.add_argument("--commits", type=int, default=2000, help="INSERT+COMMITs for the commit-rate baseline.")
    ap.add_argument("--only", choices=["sqlite", "postgres_1w", "postgres_2w"], action="append")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "engine-latest.json"))
    args = ap.parse_args()
    server, http_url = start_http_server()
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, kind, workers in (
                ("sqlite", "sqlite", 1),
                ("postgres_1w", "postgres", 1),
                ("postgres_2w", "postgres", 2),
            ):
                if args.only and name not in args.only:
                    continue
                url = await fresh_database(kind, Path(tmp))
                try:
                    rate = await commit_rate(url, args.commits)
                    trivial = await scenario(url, workers, args.runs, TRIVIAL, "trivial")
                    http = await scenario(url, workers, args.http_runs, http_flow(http_url), "http")
                finally:
                    await drop_database(url)
                results[name] = {
                    "steps_per_s": trivial["steps_per_s"],
                    "runs_per_s": trivial["runs_per_s"],
                    "p99_ms": trivial["p99_ms"],
                    "commit_rate": round(rate, 1),
                    "ratio": round(trivial["steps_per_s"] / rate, 2),
                    "trivial": trivial,
                    "http": http,
                }
                r = results[name]
                print(
                    f"{name:12} commit/s {r['commit_rate']:8.0f} | trivial: runs/s {trivial['runs_per_s']:7.0f} steps/s "
                    f"{trivial['steps_per_s']:8.0f} ratio {r['ratio']:.2f} p50 {trivial['p50_ms']:.0f} ms p99 "
                    f"{trivial['p99_ms']:.0f} ms cpu {trivial['cpu_ms_per_step']:.3f} ms/step | http: runs/s "
                    f"{http['runs_per_s']:.0f} steps/s {http['steps_per_s']:.0f} p99 {http['p99_ms']:.0f} ms"
                )
    finally:
        server.terminate()
        server.wait()
    if "postgres_1w" in results and "postgres_2w" in results:
        results["scaling_2w_over_1w"] = round(
            results["postgres_2w"]["steps_per_s"] / results["postgres_1w"]["steps_per_s"], 2
        )
    return results, args.out


def run() -> None:
    results, out = asyncio.run(main())
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    run()
