"""`crossdock template ...`: list and show templates, instantiate one for a merchant, upgrade a fleet."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
import yaml
from rich.progress import Progress
from rich.table import Table

from crossdock.cli.admin import DbOpt, JsonOpt, operator_session
from crossdock.cli.output import console, emit, run
from crossdock.core.errors import ValidationFailed
from crossdock.engine.core import engine_of
from crossdock.flows import service, views
from crossdock.flows.schemas import InstanceCreate, InstanceOut, UpgradeItem, UpgradeReport

template_app = typer.Typer(help="Flow templates: list, show, instantiate, upgrade a fleet.", no_args_is_help=True)


def parse_pairs(pairs: list[str], what: str) -> dict[str, Any]:
    """`key=value` options; values are YAML scalars/collections (`2.5`, `true`, `[a, b]`, `{X: Y}`)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValidationFailed(f"--{what} {pair!r} must look like key=value.")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ValidationFailed(f"--{what} {pair!r}: the value is not valid YAML ({exc}).") from None
        # a decimal like 2.50 stays text, so its digits are kept exactly
        out[key.strip()] = raw.strip() if isinstance(value, float) else value
    return out


@template_app.command("list")
def template_list(json: JsonOpt = False) -> None:
    """List the templates and their versions."""
    emit(views.list_templates(), as_json=json, columns=["name", "title", "versions", "latest"])


@template_app.command("show")
def template_show(
    name: str,
    version: Annotated[int | None, typer.Option("--version", help="Version (default: latest).")] = None,
    json: JsonOpt = False,
) -> None:
    """Show a template: parameters (with defaults), connections, cases, and the definition."""
    out = views.show_template(name, version)
    if json:
        emit(out, as_json=True)
        return
    console.print(f"[bold]{out.name}[/] v{out.version}: {out.title}\n{out.description}\n")
    table = Table(title="Parameters", header_style="bold")
    for col in ("name", "type", "default", "description"):
        table.add_column(col)
    for p in out.params:
        table.add_row(p["name"], p["type"], orjson.dumps(p["default"]).decode(), p["description"])
    console.print(table)
    conns = Table(title="Connections", header_style="bold")
    for col in ("role", "system", "required"):
        conns.add_column(col)
    for b in out.bindings:
        conns.add_row(b.role, b.system, "yes" if b.required else "no")
    console.print(conns)
    cases = Table(title="Cases it can raise", header_style="bold")
    for col in ("category", "step", "when"):
        cases.add_column(col)
    for c in out.cases:
        cases.add_row(str(c.get("category")), str(c.get("step")), str(c.get("when")))
    console.print(cases)


@template_app.command("instantiate")
def template_instantiate(
    merchant_id: str,
    name: str,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Parameter override key=value (repeatable).")] = None,
    bind: Annotated[
        list[str] | None, typer.Option("--bind", help="Connection role=CONNECTION_ID (repeatable).")
    ] = None,
    version: Annotated[int | None, typer.Option("--version", help="Template version (default: latest).")] = None,
    key: Annotated[str | None, typer.Option(help="Engine flow key (default: the template name).")] = None,
    json: JsonOpt = False,
    database: DbOpt = None,
) -> None:
    """Create MERCHANT_ID's instance of template NAME, render it and publish its flow."""

    async def go() -> InstanceOut:
        async with operator_session(database) as (c, s, actor):
            body = InstanceCreate(
                merchant_id=merchant_id,
                template=name,
                version=version,
                key=key,
                overrides=parse_pairs(set_ or [], "set"),
                bindings={k: str(v) for k, v in parse_pairs(bind or [], "bind").items()},
            )
            return InstanceOut.model_validate(await service.create_instance(s, actor, engine_of(c), body))

    emit(
        run(go()),
        as_json=json,
        columns=["id", "merchant_id", "key", "template", "template_version", "engine_flow_id", "engine_version"],
    )


def _fmt(values: list[dict[str, Any]], key: str = "name") -> str:
    return ", ".join(str(v[key]) for v in values) or "-"


def diff_table(report: UpgradeReport) -> Table:
    """The per-merchant diff as a Rich table."""
    title = f"{report.template} → v{report.to_version}" + (" (dry run)" if report.dry_run else "")
    table = Table(title=title, header_style="bold")
    for col in ("merchant", "instance", "from", "status", "params added", "removed", "new defaults", "kept", "steps"):
        table.add_column(col)
    for item in report.items:
        p, d = item.params, item.definition
        defaults = ", ".join(f"{x['name']}: {x['from']}→{x['to']}" for x in p.get("defaulted", [])) or "-"
        kept = ", ".join(f"{k}={orjson.dumps(v).decode()}" for k, v in p.get("kept", {}).items()) or "-"
        steps = (
            f"+{len(d.get('steps_added', []))} -{len(d.get('steps_removed', []))} ~{len(d.get('steps_changed', []))}"
            if d
            else (item.error or "-")
        )
        table.add_row(
            str(item.merchant_id),
            item.key,
            f"v{item.from_version}",
            item.status,
            _fmt(p.get("added", [])),
            _fmt(p.get("removed", [])),
            defaults,
            kept,
            steps,
        )
    return table


@template_app.command("upgrade")
def template_upgrade(
    template: str,
    to: Annotated[int, typer.Option("--to", help="Target template version.")],
    merchants: Annotated[list[str] | None, typer.Option("--merchants", help="Only these merchant ids.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show the per-merchant diff.")] = False,
    json: JsonOpt = False,
    database: DbOpt = None,
) -> None:
    """Show the per-merchant diff to version --to; without --dry-run, upgrade every instance."""

    async def go() -> UpgradeReport:
        async with operator_session(database) as (c, s, actor):
            if dry_run or json:
                return await service.upgrade(
                    s, actor, engine_of(c), template, to, merchant_ids=merchants, dry_run=dry_run
                )
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task(f"upgrading {template} to v{to}", total=None)

                def tick(_item: UpgradeItem) -> None:
                    bar.advance(task)

                return await service.upgrade(
                    s, actor, engine_of(c), template, to, merchant_ids=merchants, dry_run=False, progress=tick
                )

    report = run(go())
    if json:
        sys.stdout.write(orjson.dumps(report.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        console.print(diff_table(report))
    if any(i.status == "failed" for i in report.items):
        raise typer.Exit(2)
