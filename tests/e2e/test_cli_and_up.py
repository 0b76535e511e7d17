"""The CLI and `crossdock up --demo` as a new user runs them: real processes, real HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from crossdock.connectors.sandbox.serve import free_port

CLI = [sys.executable, "-m", "crossdock.cli"]


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CROSSDOCK_LOG_JSON": "false", **(env or {})},
    )


def test_cli_admin_round_trip_and_clean_errors(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert cli("db", "upgrade", "--database", db, cwd=tmp_path).returncode == 0
    made = cli("partner", "create", "Acme Partners", "--json", "--database", db, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    partner = json.loads(made.stdout)
    assert partner["name"] == "Acme Partners" and partner["slug"] == "acme-partners"
    merchant = json.loads(
        cli("merchant", "create", partner["id"], "Shop One", "--json", "--database", db, cwd=tmp_path).stdout
    )
    user = json.loads(
        cli(
            "user",
            "create",
            "a@shop.test",
            "Ann",
            "--merchant-id",
            merchant["id"],
            "--role",
            "merchant_admin",
            "--json",
            "--database",
            db,
            cwd=tmp_path,
        ).stdout
    )
    token = json.loads(cli("token", "create", user["id"], "--json", "--database", db, cwd=tmp_path).stdout)
    assert token["token"].startswith("cdk_")
    listed = cli("merchant", "list", "--database", db, cwd=tmp_path)
    assert "Shop One" in listed.stdout  # human-readable table

    bad = cli("merchant", "create", "ptn_01M0000000000000000000000", "X", "--database", db, cwd=tmp_path)
    assert bad.returncode == 1
    assert "partner 'ptn_01M0000000000000000000000' was not found" in bad.stderr
    assert "Traceback" not in bad.stderr + bad.stdout


@pytest.mark.slow
def test_up_demo_serves_and_prints_working_tokens(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "up", "--demo", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CROSSDOCK_LOG_JSON": "false", "COLUMNS": "200"},
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("crossdock up did not serve /healthz within 60 s")
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    tokens = dict(re.findall(r"(\w+_(?:admin|operator|approver|viewer))\s*│\s*(cdk_[\w-]+)", output))
    assert set(tokens) == {
        "platform_admin",
        "partner_admin",
        "partner_operator",
        "merchant_admin",
        "merchant_approver",
        "merchant_viewer",
    }
    assert (tmp_path / ".crossdock" / "crossdock.db").exists()
    # The printed tokens work against the API (start it again on the same database).
    proc2 = subprocess.Popen(
        [*CLI, "up", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                resp = httpx.get(
                    f"{base}/v1/merchants", headers={"Authorization": f"Bearer {tokens['partner_admin']}"}, timeout=1
                )
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert resp.status_code == 200
        assert {m["name"] for m in resp.json()["items"]} == {"Aurora Outfitters", "Cobalt Wholesale"}
        viewer = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {tokens['merchant_viewer']}"})
        assert viewer.json()["grants"][0]["role"] == "merchant_viewer"
    finally:
        os.killpg(proc2.pid, signal.SIGKILL)
        proc2.wait()
