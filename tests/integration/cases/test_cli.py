"""`crossdock case ...` through Typer's runner against the test database: list, show, act, bulk, errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from crossdock.bootstrap import Container
from crossdock.cases.cli import cases_app
from tests.factories import World

from .conftest import all_cases, audit_actions, failure, open_case

app = typer.Typer()
app.add_typer(cases_app, name="case")


async def case_cli(container: Container, *args: str) -> tuple[int, str]:
    """Run the command in a thread: the CLI runs its own event loop."""
    url = container.settings.resolved_database_url
    result = await asyncio.to_thread(CliRunner().invoke, app, ["case", *args, "--database", url])
    return result.exit_code, result.output


async def test_cli_lists_shows_acts_and_reports_errors(container: Container, world: World, tmp_path: Path) -> None:
    sku = await open_case(container, failure(world, "M1a", cause="SKU X-1"))
    credit = await open_case(container, failure(world, "M1b", category="credit_hold"))

    code, out = await case_cli(container, "list", "--category", "credit_hold", "--json")
    assert (code, [c["id"] for c in json.loads(out)]) == (0, [credit.id])

    code, out = await case_cli(container, "show", sku.id)
    assert code == 0 and sku.id in out and "open by system" in out

    code, _ = await case_cli(container, "assign", sku.id, "ana@aurora.test")
    assert code == 0
    code, out = await case_cli(container, "ignore", credit.id, "--reason", "test order", "--json")
    assert (code, json.loads(out)["state"]) == (0, "ignored")

    code, out = await case_cli(
        container, "bulk", "--action", "resolve", "--team", "catalog", "--reason", "fixed", "--json"
    )
    assert (code, json.loads(out)["case_ids"]) == (0, [sku.id])

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, out = await case_cli(container, "replay", sku.id, "--payload", f"@{bad}")
    assert code == 1 and "--payload is not valid JSON" in out
    code, out = await case_cli(container, "bulk", "--action", "ignore", "--reason", "x")
    assert code == 1 and "filter must name at least one field" in out
    code, out = await case_cli(container, "show", "cas_01J0000000000000000000000")
    assert code == 1 and "was not found" in out

    assert {c.id: c.state for c in await all_cases(container)} == {sku.id: "resolved", credit.id: "ignored"}
    assert await audit_actions(container, sku.id) == ["cases.case.open", "cases.case.assign", "cases.case.resolve"]
