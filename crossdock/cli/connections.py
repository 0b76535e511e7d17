"""`crossdock connection ...` and `crossdock keys ...`: connections and the master key for secrets."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from sqlalchemy import select

from crossdock.cli.admin import DbOpt, JsonOpt, operator_session
from crossdock.cli.output import console, emit, run
from crossdock.connections import service
from crossdock.connections.models import Connection
from crossdock.connections.schemas import ConnectionCreate, ConnectionOut
from crossdock.core.errors import NotFound, ValidationFailed
from crossdock.core.secrets import generate_key

connection_app = typer.Typer(help="Connections to external systems: create, list, test.", no_args_is_help=True)
keys_app = typer.Typer(help="Master keys for secrets at rest.", no_args_is_help=True)


def _json_arg(value: str | None, what: str) -> dict[str, Any]:
    if not value:
        return {}
    if value.startswith("@"):
        with open(value[1:], "rb") as fh:
            value = fh.read().decode()
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"--{what} is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ValidationFailed(f"--{what} must be a JSON object.")
    return parsed


@connection_app.command("create")
def connection_create(
    merchant_id: str,
    system: str,
    name: str,
    config: Annotated[str | None, typer.Option(help="JSON object, or @file.json.")] = None,
    secrets: Annotated[str | None, typer.Option(help="JSON object, or @file.json (encrypted at rest).")] = None,
    environment: Annotated[str, typer.Option(help="sandbox or production.")] = "production",
    json: JsonOpt = False,
    database: DbOpt = None,
) -> None:
    """Create a connection for a merchant (SYSTEM: shopify, businesscentral, netsuite, shipstation, ...)."""

    async def go() -> ConnectionOut:
        async with operator_session(database) as (c, s, actor):
            body = ConnectionCreate(
                merchant_id=merchant_id,
                system=system,
                name=name,
                environment=environment,
                config=_json_arg(config, "config"),
                secrets=_json_arg(secrets, "secrets"),
            )
            conn = await service.create_connection(s, actor, body, registry=c.connectors, box=c.secrets)
            return ConnectionOut.model_validate(conn)

    emit(run(go()), as_json=json, columns=["id", "merchant_id", "system", "name", "environment", "secret_fields"])


@connection_app.command("list")
def connection_list(
    merchant_id: Annotated[str | None, typer.Option()] = None,
    system: Annotated[str | None, typer.Option()] = None,
    json: JsonOpt = False,
    database: DbOpt = None,
) -> None:
    """List connections (never their secrets)."""

    async def go() -> list[ConnectionOut]:
        async with operator_session(database) as (_c, s, _a):
            rows, _ = await service.list_connections(s, limit=500, cursor=None, merchant_id=merchant_id, system=system)
            return [ConnectionOut.model_validate(r) for r in rows]

    emit(run(go()), as_json=json, columns=["id", "merchant_id", "system", "name", "environment", "status"])


@connection_app.command("test")
def connection_test(
    name: Annotated[str, typer.Argument(help="Connection id or name.")],
    merchant_id: Annotated[str | None, typer.Option(help="Disambiguate a name.")] = None,
    database: DbOpt = None,
) -> None:
    """Check reachability and credentials, and print a diagnosis."""

    async def go() -> tuple[str, Any]:
        async with operator_session(database) as (c, s, actor):
            stmt = select(Connection).where((Connection.id == name) | (Connection.name == name))
            if merchant_id:
                stmt = stmt.where(Connection.merchant_id == merchant_id)
            rows = (await s.scalars(stmt)).all()
            if not rows:
                raise NotFound("connection", name)
            if len(rows) > 1:
                raise ValidationFailed(f"{len(rows)} connections are named {name!r}; pass --merchant-id or the id.")
            result = await service.test_connection(s, actor, rows[0].id, registry=c.connectors, box=c.secrets)
            return rows[0].name, result

    conn_name, result = run(go())
    mark = "[green]OK[/]" if result.ok else "[red]FAILED[/]"
    console.print(f"{mark} {conn_name}: {result.summary}")
    for check in result.checks:
        ok = "[green]✓[/]" if check.get("ok") else "[red]✗[/]"
        console.print(f"  {ok} {check.get('name')}: {check.get('detail', '')}")
    if not result.ok:
        raise typer.Exit(2)


@connection_app.command("rotate-keys")
def connection_rotate_keys(database: DbOpt = None) -> None:
    """Re-encrypt every stored secret with the newest master key (put the new key first)."""

    async def go() -> int:
        async with operator_session(database) as (c, s, actor):
            return await service.rotate_keys(s, actor, c.secrets)

    console.print(f"re-encrypted {run(go())} connection(s) with the newest key")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new master key (Fernet). Put it first in CROSSDOCK_MASTER_KEY or the key file."""
    print(generate_key())
