"""`crossdock template instantiate` and `template upgrade` as an operator runs them, on a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from crossdock.core.secrets import generate_key

CLI = [sys.executable, "-m", "crossdock.cli"]


def test_instantiate_then_upgrade_a_fleet_keeping_overrides(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CROSSDOCK_LOG_JSON": "false",
        "CROSSDOCK_LOG_LEVEL": "WARNING",
        "CROSSDOCK_DATABASE_URL": f"sqlite:///{tmp_path / 'cd.db'}",
        "CROSSDOCK_MASTER_KEY": generate_key(),
        "CROSSDOCK_HOME": str(tmp_path),
        "COLUMNS": "250",
    }

    def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*CLI, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
        if ok:
            assert done.returncode == 0, done.stderr + done.stdout
        return done

    def js(*args: str) -> dict:
        return json.loads(cli(*args, "--json").stdout)

    cli("db", "upgrade")
    partner = js("partner", "create", "Fleet Partners")
    instances = {}
    for name, threshold in (("Alpha", "20"), ("Beta", "45")):
        merchant = js("merchant", "create", partner["id"], name)
        shop = js(
            "connection",
            "create",
            merchant["id"],
            "shopify",
            f"{name.lower()}-shop",
            "--config",
            json.dumps({"shop_domain": f"{name.lower()}.myshopify.com"}),
            "--secrets",
            json.dumps({"access_token": "shpat_x", "webhook_secrets": ["s"]}),
        )
        erp = js(
            "connection",
            "create",
            merchant["id"],
            "businesscentral",
            f"{name.lower()}-bc",
            "--config",
            json.dumps({"tenant": "t", "company_id": "c1"}),
            "--secrets",
            json.dumps({"client_id": "i", "client_secret": "s"}),
        )
        inst = js(
            "template",
            "instantiate",
            merchant["id"],
            "order_import",
            "--version",
            "1",
            "--set",
            f"discount_threshold_pct={threshold}",
            "--bind",
            f"storefront={shop['id']}",
            "--bind",
            f"erp={erp['id']}",
        )
        assert (inst["template"], inst["template_version"], inst["engine_version"]) == ("order_import", 1, 1)
        instances[merchant["id"]] = (inst, threshold)

    # Dry run: the per-merchant diff, nothing changed.
    plan = js("template", "upgrade", "order_import", "--to", "2", "--dry-run")
    assert plan["dry_run"] is True
    by_merchant = {item["merchant_id"]: item for item in plan["items"]}
    assert set(by_merchant) == set(instances)
    for merchant_id, (_inst, threshold) in instances.items():
        item = by_merchant[merchant_id]
        assert (item["status"], item["from_version"], item["to_version"]) == ("would_upgrade", 1, 2)
        assert [p["name"] for p in item["params"]["added"]] == ["notify_imported"]
        assert [p["name"] for p in item["params"]["removed"]] == ["writeback_note"]
        assert item["params"]["kept"] == {"discount_threshold_pct": threshold}
    table = cli("template", "upgrade", "order_import", "--to", "2", "--dry-run").stdout
    assert "would_upgrade" in table and "order_import → v2 (dry run)" in table

    # The real upgrade (progress bar path), then everyone is on v2 with their own overrides.
    cli("template", "upgrade", "order_import", "--to", "2")
    again = js("template", "upgrade", "order_import", "--to", "2", "--dry-run")
    assert {i["status"] for i in again["items"]} == {"up_to_date"}
    assert {i["merchant_id"]: i["params"]["kept"] for i in again["items"]} == {
        m: {"discount_threshold_pct": t} for m, (_i, t) in instances.items()
    }

    bad = cli("template", "upgrade", "order_import", "--to", "9", ok=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
