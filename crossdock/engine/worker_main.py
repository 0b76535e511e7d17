"""Entry point of a standalone worker process: `python -m crossdock.engine.worker_main`.

Used by `crossdock worker`, the kill -9 tests and the benchmark. `--setup module:function` calls a
function with the process's `Engine` first (to register actions, verifiers, pollers).
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Callable
from typing import Any

from crossdock.core.loop import run as run_loop
from crossdock.core.settings import Settings
from crossdock.engine.runtime import run_worker_process


def _load(ref: str) -> Callable[..., Any]:
    module, _, name = ref.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return fn


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Run Crossdock engine workers until SIGTERM.")
    p.add_argument("--database-url", default=None, help="Database URL (default: CROSSDOCK_DATABASE_URL / embedded).")
    p.add_argument("--workers", type=int, default=1, help="Worker loops in this process.")
    p.add_argument("--concurrency", type=int, default=None, help="Runs each loop executes at once.")
    p.add_argument("--claim-batch", type=int, default=None)
    p.add_argument("--lease-seconds", type=float, default=None)
    p.add_argument("--heartbeat-seconds", type=float, default=None)
    p.add_argument("--poll-seconds", type=float, default=None)
    p.add_argument("--merchant-concurrency", type=int, default=None)
    p.add_argument("--no-scheduler", action="store_true", help="Do not run timers, cron, polls and the reaper here.")
    p.add_argument("--setup", default=None, help="module:function called with the Engine before starting.")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings(database_url=args.database_url) if args.database_url else Settings()
    options = {
        k: v
        for k, v in {
            "concurrency": args.concurrency,
            "claim_batch": args.claim_batch,
            "lease_seconds": args.lease_seconds,
            "heartbeat_seconds": args.heartbeat_seconds,
            "poll_seconds": args.poll_seconds,
            "merchant_concurrency": args.merchant_concurrency,
        }.items()
        if v is not None
    }
    setup = _load(args.setup) if args.setup else None
    run_loop(
        run_worker_process(settings, workers=args.workers, scheduler=not args.no_scheduler, setup=setup, **options)
    )


if __name__ == "__main__":
    main()
