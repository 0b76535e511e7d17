"""CLI for flows and runs (`crossdock flow ...`, `crossdock run ...`) and `crossdock worker`.

Commands act as the system actor on the configured database (operator tooling on the host), call
the same service functions as the API, and print JSON.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel

from crossdock.bootstrap import Container, build_container
from crossdock.core.context import Actor
from crossdock.core.errors import CrossdockError
from crossdock.core.loop import run as run_loop
from crossdock.engine import service
from crossdock.engine.core import engine_of
from crossdock.engine.schemas import FlowCreate, FlowOut, JournalOut, RunOut, RunStart, VersionOut, WaitOut

flows_app = typer.Typer(help="Create, version and publish flows.", no_args_is_help=True)
runs_app = typer.Typer(help="Start, inspect, cancel, replay runs and resolve waits.", no_args_is_help=True)

T = TypeVar("T")
SYSTEM = Actor.system()


def _run(fn: Callable[[Container], Awaitable[T]]) -> T:
    async def main() -> T:
        container = build_container()
        try:
            return await fn(container)
        finally:
            await engine_of(container).close()
            await container.close()

    try:
        return asyncio.run(main())
    except CrossdockError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        for e in exc.details.get("errors", []) if isinstance(exc.details, dict) else []:
            typer.echo(f"  {e['path']}: {e['problem']}", err=True)
        raise typer.Exit(1) from exc


def _print(value: Any) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    typer.echo(json.dumps(value, indent=2, default=str))


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@flows_app.command("create")
def flow_create(
    merchant: Annotated[str, typer.Option(help="Merchant id.")],
    key: Annotated[str, typer.Option(help="Flow key, unique per merchant.")],
    file: Annotated[Path, typer.Argument(help="Definition file (YAML or JSON).")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the key).")] = None,
    publish: Annotated[bool, typer.Option(help="Publish version 1 right away.")] = False,
) -> None:
    """Create a flow from a definition file."""

    data = FlowCreate(merchant_id=merchant, key=key, name=name or key, definition=file.read_text())

    async def go(c: Container) -> Any:
        async with c.db.session(SYSTEM.scope) as s:
            flow, version = await service.create_flow(s, SYSTEM, engine_of(c), data)
            if publish:
                version = await service.publish_version(s, SYSTEM, engine_of(c), flow.id, version.number)
            return {"flow": FlowOut.model_validate(flow).model_dump(mode="json"), "version": version.number}

    _print(_run(go))


@flows_app.command("version")
def flow_version(flow_id: str, file: Path) -> None:
    """Add a draft version from a definition file."""

    text = file.read_text()

    async def go(c: Container) -> VersionOut:
        async with c.db.session(SYSTEM.scope) as s:
            v = await service.create_version(s, SYSTEM, engine_of(c), flow_id, text)
            return VersionOut.model_validate(v)

    _print(_run(go))


@flows_app.command("publish")
def flow_publish(flow_id: str, version: int) -> None:
    """Publish a version; runs in flight keep their version."""

    async def go(c: Container) -> VersionOut:
        async with c.db.session(SYSTEM.scope) as s:
            return VersionOut.model_validate(await service.publish_version(s, SYSTEM, engine_of(c), flow_id, version))

    _print(_run(go))


@flows_app.command("list")
def flow_list(merchant: str | None = None, limit: int = 50, cursor: str | None = None) -> None:
    async def go(c: Container) -> Any:
        async with c.db.session(SYSTEM.scope) as s:
            rows, nxt = await service.list_flows(s, limit=limit, cursor=cursor, merchant_id=merchant)
            return {"items": [FlowOut.model_validate(r).model_dump(mode="json") for r in rows], "next_cursor": nxt}

    _print(_run(go))


@flows_app.command("validate")
def flow_validate(file: Path) -> None:
    """Check a definition file without storing it."""

    text = file.read_text()

    async def go(c: Container) -> str:
        engine_of(c).validate(text)
        return "valid"

    typer.echo(_run(go))


@runs_app.command("start")
def run_start(
    flow_id: str,
    input: Annotated[str | None, typer.Option("--input", help="Run input as JSON.")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key.")] = None,
) -> None:
    async def go(c: Container) -> RunOut:
        async with c.db.session(SYSTEM.scope) as s:
            run, _ = await service.start_run(s, SYSTEM, flow_id, RunStart(input=_json(input), idempotency_key=key))
            return RunOut.model_validate(run)

    _print(_run(go))


@runs_app.command("list")
def run_list(
    status: str | None = None,
    flow: str | None = None,
    merchant: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> None:
    async def go(c: Container) -> Any:
        async with c.db.session(SYSTEM.scope) as s:
            rows, nxt = await service.list_runs(
                s, limit=limit, cursor=cursor, status=status, flow_id=flow, merchant_id=merchant
            )
            return {"items": [RunOut.model_validate(r).model_dump(mode="json") for r in rows], "next_cursor": nxt}

    _print(_run(go))


@runs_app.command("show")
def run_show(run_id: str) -> None:
    async def go(c: Container) -> RunOut:
        async with c.db.session(SYSTEM.scope) as s:
            return RunOut.model_validate(await service.get_run(s, run_id))

    _print(_run(go))


@runs_app.command("journal")
def run_journal(run_id: str) -> None:
    """Print the run's step journal."""

    async def go(c: Container) -> list[JournalOut]:
        async with c.db.session(SYSTEM.scope) as s:
            return [JournalOut.model_validate(j) for j in await service.get_journal(s, run_id)]

    _print(_run(go))


@runs_app.command("cancel")
def run_cancel(run_id: str) -> None:
    async def go(c: Container) -> RunOut:
        async with c.db.session(SYSTEM.scope) as s:
            return RunOut.model_validate(await service.cancel_run(s, SYSTEM, run_id))

    _print(_run(go))


@runs_app.command("replay")
def run_replay(
    run_id: str,
    from_step: Annotated[str, typer.Option("--from", help="Step path to replay from.")],
    input: Annotated[str | None, typer.Option("--input", help="Edited run input as JSON.")] = None,
) -> None:
    async def go(c: Container) -> RunOut:
        async with c.db.session(SYSTEM.scope) as s:
            run = await service.replay_run(s, SYSTEM, run_id, from_step, new_input=_json(input), edit=input is not None)
            return RunOut.model_validate(run)

    _print(_run(go))


@runs_app.command("resolve")
def run_resolve(
    wait_id: str,
    key: Annotated[str, typer.Option(help="Idempotency key; the same key again acts once.")],
    payload: Annotated[str | None, typer.Option(help='Resolution as JSON (approvals: {"decision": ...}).')] = None,
) -> None:
    """Resolve an event wait or decide an approval."""

    async def go(c: Container) -> WaitOut:
        async with c.db.session(SYSTEM.scope) as s:
            wait, _ = await service.resolve_wait(s, SYSTEM, wait_id, resolution=_json(payload), idempotency_key=key)
            return WaitOut.model_validate(wait)

    _print(_run(go))


@runs_app.command("waits")
def run_waits(status: str = "open", kind: str | None = None, limit: int = 50) -> None:
    async def go(c: Container) -> Any:
        async with c.db.session(SYSTEM.scope) as s:
            rows, nxt = await service.list_waits(s, limit=limit, cursor=None, status=status, kind=kind)
            return {"items": [WaitOut.model_validate(r).model_dump(mode="json") for r in rows], "next_cursor": nxt}

    _print(_run(go))


def worker_command(
    workers: Annotated[int, typer.Option(help="Worker loops in this process.")] = 1,
    concurrency: Annotated[int | None, typer.Option(help="Runs each loop executes at once.")] = None,
    scheduler: Annotated[bool, typer.Option(help="Also run timers, cron, polls and the reaper.")] = True,
) -> None:
    """Run engine workers until SIGTERM (the distributed mode; any number, on any machine)."""
    from crossdock.core.settings import Settings
    from crossdock.engine.runtime import run_worker_process

    options: dict[str, Any] = {"concurrency": concurrency} if concurrency else {}
    run_loop(run_worker_process(Settings(), workers=workers, scheduler=scheduler, **options))
