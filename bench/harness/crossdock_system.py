"""Crossdock as a system under test: `crossdock_sqlite`, `crossdock_pg_1w`, `crossdock_pg_2w`.

Per run the harness calls :meth:`CrossdockSystem.launch`, which:

1. creates fresh storage (a temp SQLite file, or the PostgreSQL database ``bench_crossdock``
   dropped and recreated) and exports ``CROSSDOCK_DATABASE_URL`` and a fresh master key;
2. runs ``crossdock db upgrade``;
3. runs ``crossdock_setup.py``, which configures a merchant, its Shopify connection (secret =
   ``ctx.secret``) and a published flow — Shopify webhook trigger → JMESPath map →
   ``http.request`` POST to ``ctx.erp_url`` with an ``Idempotency-Key`` — and prints the connection id;
4. spawns ``crossdock api --host 127.0.0.1 --port P`` and N x ``crossdock worker``;
5. posts to ``{api}/hooks/shopify/{connection_id}``.

The contract the flow meets is in ``docs/benchmark.md`` ("Plug-in contract").
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .systems import PYTHON, ProcSystem, RunContext, pg_available, pg_recreate, pg_settings

# --- The commands, as argument lists after `crossdock` (ENABLED=False hides the three systems) ---
ENABLED = True
CLI = [str(Path(PYTHON).parent / "crossdock")]  # the venv's console script
UPGRADE_CMD = ["db", "upgrade"]
# Configures merchant, Shopify connection and the published flow; prints the connection id.
SETUP_CMD = [
    str(Path(__file__).with_name("crossdock_setup.py")),
    "--erp-url",
    "{erp_url}",
    "--shopify-secret",
    "{secret}",
]
API_CMD = ["api", "--host", "127.0.0.1", "--port", "{port}"]
WORKER_CMD = ["worker"]
DB_ENV = "CROSSDOCK_DATABASE_URL"
PG_DBNAME = "bench_crossdock"
# -------------------------------------------------------------------------------------


def _fmt(args: list[str], **kw: object) -> list[str]:
    return [a.format(**kw) for a in args]


class CrossdockSystem(ProcSystem):
    """Crossdock API + N workers on SQLite or PostgreSQL."""

    is_crossdock = True
    start_timeout = 120.0

    def __init__(self, name: str, backend: str, workers: int) -> None:
        super().__init__()
        self.name = name
        self.backend = backend  # "sqlite" | "pg"
        self.workers = workers
        self.description = f"Crossdock, {backend}, {workers} worker(s)"
        self.cpu_comms = ("postgres",) if backend == "pg" else ()

    def unavailable(self) -> str | None:
        return pg_available() if self.backend == "pg" else None

    def database_url(self, ctx: RunContext) -> str:
        if self.backend == "sqlite":
            return f"sqlite+aiosqlite:///{ctx.workdir / 'crossdock.db'}"
        pg = pg_settings()
        auth = pg["user"] + (f":{pg['password']}" if pg["password"] else "")
        return f"postgresql+asyncpg://{auth}@{pg['host']}:{pg['port']}/{PG_DBNAME}"

    def launch(self, ctx: RunContext) -> None:
        if self.backend == "pg":
            pg_recreate(PG_DBNAME)
        env = self.base_env(
            **{DB_ENV: self.database_url(ctx)},
            CROSSDOCK_HOME=str(ctx.workdir),
            # Secrets at rest need a master key in PostgreSQL mode; every process of the run shares it.
            CROSSDOCK_MASTER_KEY=_master_key(),
            CROSSDOCK_LOG_LEVEL="WARNING",
            # One merchant sends every order here, so give it the whole worker (a partner would raise
            # the per-merchant cap the same way for a single large merchant).
            CROSSDOCK_WORKER__CONCURRENCY="256",
            CROSSDOCK_WORKER__MERCHANT_CONCURRENCY="256",
        )
        self.run_cmd([*CLI, *UPGRADE_CMD], env=env, cwd=ctx.workdir)
        out = self.run_cmd(
            [PYTHON, *_fmt(SETUP_CMD, erp_url=ctx.erp_url, secret=ctx.secret)],
            env=env,
            cwd=ctx.workdir,
        )
        connection_id = _parse_connection_id(out)
        self.spawn([*CLI, *_fmt(API_CMD, port=ctx.port)], env=env, cwd=ctx.workdir)
        for _ in range(self.workers):
            self.spawn([*CLI, *WORKER_CMD], env=env, cwd=ctx.workdir)
        self.webhook_url = f"http://127.0.0.1:{ctx.port}/hooks/shopify/{connection_id}"

    def cleanup(self) -> None:
        if self.backend == "pg":
            try:
                pg_recreate(PG_DBNAME, drop_only=True)
            except Exception:
                pass


def _master_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _parse_connection_id(out: str) -> str:
    lines = [ln.strip() for ln in out.strip().splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError("crossdock setup printed no connection id")
    try:
        return str(json.loads(lines[-1])["connection_id"])
    except (ValueError, KeyError, TypeError):
        return lines[-1]


def crossdock_systems() -> list[CrossdockSystem]:
    """The three Crossdock systems, or none when not enabled or the engine isn't importable."""
    if not (ENABLED or os.environ.get("BENCH_CROSSDOCK") == "1"):
        return []
    try:
        import crossdock.engine  # noqa: F401
    except ImportError:
        return []
    systems = [
        CrossdockSystem("crossdock_sqlite", "sqlite", 1),
        CrossdockSystem("crossdock_pg_1w", "pg", 1),
        CrossdockSystem("crossdock_pg_2w", "pg", 2),
    ]
    if shutil.which("psql") is None:
        systems = systems[:1]
    return systems
