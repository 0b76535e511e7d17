"""The ``System`` plug-in interface and the registry of systems under test.

A system is whatever turns a signed Shopify webhook into a sales order at the
harness's ERP recorder. The harness drives every system the same way::

    system.start(ctx)          # start processes (ctx: ports, ERP URL, secret, workdir, log)
    system.webhook_url         # where the load generator posts (set by start)
    system.ready()             # extra readiness check (e.g. a log line); the harness
                               # then posts probe webhooks until one reaches the ERP
    system.pids()              # root pids: their process trees count for CPU and RSS
    system.cpu_comms           # names of shared server processes counted for CPU only
    system.stop()              # SIGTERM each process group, SIGKILL after a grace period

:class:`ProcSystem` implements the process bookkeeping (each process in its own
session/process group, logs to ``ctx.log_path``); subclasses only build
commands. Register a new system by adding it to :func:`registry`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
PEERS_DIR = BENCH / ".peers"
PYTHON = sys.executable


@dataclass
class RunContext:
    """Everything a system needs to start for one run."""

    erp_url: str  # POST sales orders here (with Idempotency-Key)
    secret: str  # Shopify webhook secret (HMAC key)
    port: int  # a free 127.0.0.1 port for the system's webhook listener
    workdir: Path  # fresh, empty, removed after the run
    log_path: Path  # append all process output here
    run_id: str  # e.g. "celery-r1"; unique per run


class SystemStartError(RuntimeError):
    """A system failed to set up, start or become ready."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_settings() -> dict[str, str]:
    """PostgreSQL connection settings (override with BENCH_PG_HOST/PORT/USER/PASSWORD)."""
    return {
        "host": os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
        "port": os.environ.get("BENCH_PG_PORT", "5432"),
        "user": os.environ.get("BENCH_PG_USER", "postgres"),
        "password": os.environ.get("BENCH_PG_PASSWORD", ""),
    }


def psql(sql: str, timeout: float | None = None) -> str:
    """Run one statement with psql against the server's `postgres` database; its unaligned output.
    Raises `subprocess.CalledProcessError` (with psql's stderr) when the statement fails."""
    pg = pg_settings()
    cmd = ["psql", "-h", pg["host"], "-p", pg["port"], "-U", pg["user"], "-d", "postgres"]
    cmd += ["-v", "ON_ERROR_STOP=1", "-qAtF", "\t", "-c", sql]
    env = {**os.environ, "PGPASSWORD": pg["password"]}
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=timeout).stdout.strip()


def pg_recreate(dbname: str, drop_only: bool = False) -> None:
    """Drop (and recreate, unless drop_only) a PostgreSQL database."""
    psql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    if not drop_only:
        psql(f'CREATE DATABASE "{dbname}"')


def pg_available() -> str | None:
    """None if PostgreSQL answers, else the reason."""
    try:
        psql("select 1", timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"PostgreSQL not reachable: {exc}"
    return None


class System(ABC):
    """Interface of a system under test (see the module docstring)."""

    name: str = ""
    description: str = ""
    is_crossdock: bool = False
    cpu_comms: tuple[str, ...] = ()  # e.g. ("postgres",): shared servers, CPU only
    install_peers: tuple[str, ...] = ()  # arguments for bench/peers/install.sh
    start_timeout: float = 90.0
    webhook_url: str = ""

    def unavailable(self) -> str | None:
        """Why this system can't run here (missing install, no PG...), or None."""
        return None

    @abstractmethod
    def start(self, ctx: RunContext) -> None:
        """Start the system's processes for one run."""

    def ready(self) -> bool:
        """Extra readiness condition checked before probing (default: none)."""
        return True

    @abstractmethod
    def pids(self) -> list[int]:
        """Process ids whose CPU and RSS count for this system."""

    @abstractmethod
    def alive(self) -> bool:
        """Whether every process of the system is still running."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every process the harness started for this system."""


class ProcSystem(System):
    """A system made of processes the harness starts (one process group each)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.ctx: RunContext | None = None
        self._log = None

    # -- helpers for subclasses ---------------------------------------------------
    def log(self, text: str) -> None:
        if self._log is not None:
            self._log.write(f"[harness {time.strftime('%H:%M:%S')}] {text}\n".encode())
            self._log.flush()

    def base_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV_PROMPT")}
        env.update(extra)
        return env

    def run_cmd(self, cmd: list[str], env: dict | None = None, cwd: Path | None = None, timeout: float = 180) -> str:
        """Run a setup command to completion (output logged); return its stdout."""
        self.log("run: " + " ".join(map(str, cmd)))
        res = subprocess.run(
            [str(c) for c in cmd],
            env=env,
            cwd=cwd,
            capture_output=True,
            timeout=timeout,
            start_new_session=True,
        )
        if self._log is not None:
            self._log.write(res.stdout + res.stderr)
            self._log.flush()
        if res.returncode != 0:
            raise SystemStartError(f"{cmd[0]} exited {res.returncode}: {res.stderr.decode(errors='replace')[-800:]}")
        return res.stdout.decode(errors="replace")

    def spawn(self, cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
        """Start a long-running process in its own process group."""
        self.log("spawn: " + " ".join(map(str, cmd)))
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def log_text(self) -> str:
        if self.ctx is None or not self.ctx.log_path.exists():
            return ""
        return self.ctx.log_path.read_text(errors="replace")

    # -- System interface ---------------------------------------------------------
    def start(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.procs = []
        ctx.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(ctx.log_path, "ab")
        self.launch(ctx)

    @abstractmethod
    def launch(self, ctx: RunContext) -> None:
        """Subclasses: prepare state, ``spawn`` processes, set ``webhook_url``."""

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every process group we started, then SIGKILL what remains."""
        for p in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in reversed(self.procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))
            # kill the group even if the leader exited: children may linger
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        self.procs = []
        self.cleanup()
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        """Subclasses: drop databases etc. The workdir is removed by the harness."""


def registry() -> dict[str, System]:
    """All systems in the canonical order (Crossdock first when importable)."""
    from . import peers

    systems: list[System] = []
    from .crossdock_system import crossdock_systems

    systems.extend(crossdock_systems())
    systems.extend(
        [
            peers.N8n("n8n_sqlite", postgres=False),
            peers.N8n("n8n_pg", postgres=True),
            peers.NodeRed(),
            peers.CeleryPeer(),
            peers.Ceiling(),
        ]
    )
    return {s.name: s for s in systems}


ALL_NAMES = [
    "crossdock_sqlite",
    "crossdock_pg_1w",
    "crossdock_pg_2w",
    "n8n_sqlite",
    "n8n_pg",
    "nodered",
    "celery",
    "ceiling",
]


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
