"""`crossdock template list|show` and the key=value parsing of `instantiate --set/--bind`."""

from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

from crossdock.core.errors import ValidationFailed
from crossdock.flows.cli import diff_table, parse_pairs, template_app
from crossdock.flows.schemas import UpgradeItem, UpgradeReport

runner = CliRunner()


def test_list_as_json_names_every_template_and_version() -> None:
    result = runner.invoke(template_app, ["list", "--json"])
    assert result.exit_code == 0
    rows = orjson.loads(result.stdout)
    assert [(r["name"], r["versions"]) for r in rows][6] == ("order_import", [1, 2])
    assert len(rows) == 11


def test_show_prints_params_connections_and_cases() -> None:
    result = runner.invoke(template_app, ["show", "return_rma", "--version", "1"])
    assert result.exit_code == 0
    assert "auto_approve_under" in result.stdout and "Cases it can raise" in result.stdout


def test_set_and_bind_pairs_keep_decimals_exact() -> None:
    assert parse_pairs(
        ["price_tolerance_pct=2.50", "check_prices=false", "countries=[US, CA]", "sku_map={A: '1000'}"], "set"
    ) == {
        "price_tolerance_pct": "2.50",
        "check_prices": False,
        "countries": ["US", "CA"],
        "sku_map": {"A": "1000"},
    }
    with pytest.raises(ValidationFailed) as exc:
        parse_pairs(["erp"], "bind")
    assert exc.value.message == "--bind 'erp' must look like key=value."


def test_diff_table_has_one_row_per_merchant() -> None:
    item = UpgradeItem(
        instance_id="fli_1", merchant_id="mer_1", key="order_import", from_version=1, to_version=2,
        status="would_upgrade",
        params={"added": [{"name": "notify_imported", "default": False}], "removed": [], "defaulted": [], "kept": {"erp": "netsuite"}},
        definition={"steps_added": ["decide/writeback"], "steps_removed": [], "steps_changed": []},
    )  # fmt: skip
    table = diff_table(UpgradeReport(template="order_import", to_version=2, dry_run=True, items=[item]))
    assert table.row_count == 1 and table.title == "order_import → v2 (dry run)"
