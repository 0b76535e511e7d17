"""`crossdock api` and `crossdock worker` name their PostgreSQL connections, so an operator reading
`pg_stat_activity` (or `pg_stat_statements` by session) tells the webhook intake's backends from
the workers'. Real processes against the test database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from crossdock.connectors.sandbox.serve import free_port
from crossdock.core.db import make_engine
from tests.e2e.engine.test_crash_and_rate_budget import stop

CLI = [sys.executable, "-m", "crossdock.cli"]


def _spawn(args: list[str], database_url: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CROSSDOCK_DATABASE_URL": database_url, "CROSSDOCK_LOG_JSON": "false"}
    return subprocess.Popen([*CLI, *args], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def _names(database_url: str) -> set[str]:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT application_name FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return {r[0] for r in rows}
    finally:
        await engine.dispose()


async def test_api_and_worker_processes_name_their_connections(backend: str, database_url: str, tmp_path: Path) -> None:
    if backend != "postgres":
        pytest.skip("PostgreSQL's pg_stat_activity")
    port = free_port()
    api = _spawn(["api", "--host", "127.0.0.1", "--port", str(port)], database_url, tmp_path)
    worker = _spawn(["worker"], database_url, tmp_path)
    try:
        deadline = time.monotonic() + 60
        ready = False
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline and not ready:
                assert api.poll() is None, api.stderr.read().decode() if api.stderr else "api exited"
                try:
                    ready = (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=5)).status_code == 200
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
        assert ready, "the API did not become ready"  # /readyz queried the database: a pooled connection stays
        names: set[str] = set()
        while time.monotonic() < deadline and not {"crossdock-api", "crossdock-worker"} <= names:
            assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else "worker exited"
            names = await _names(database_url)
            await asyncio.sleep(0.2)
        assert {"crossdock-api", "crossdock-worker"} <= names, names
    finally:
        stop(api)
        stop(worker)
