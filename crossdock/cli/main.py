"""The `crossdock` command: run the platform, migrate the database, administer tenants."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer
import uvicorn
from rich.table import Table

from crossdock import __version__
from crossdock.bootstrap import Container, build_container
from crossdock.cases.cli import cases_app
from crossdock.cli.admin import merchant_app, partner_app, token_app, user_app
from crossdock.cli.connections import connection_app, keys_app
from crossdock.cli.output import STATE, console, run
from crossdock.core.logging import configure_logging
from crossdock.core.loop import settle_gc
from crossdock.core.migrate import upgrade
from crossdock.core.settings import Settings
from crossdock.engine.cli import flows_app, runs_app, worker_command
from crossdock.flows.cli import template_app
from crossdock.web.server import CoalescingHttpToolsProtocol

if TYPE_CHECKING:
    from crossdock.demo.traffic import TrafficConfig

app = typer.Typer(
    name="crossdock",
    help="Crossdock: governed workflow automation between ecommerce storefronts and ERPs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(partner_app, name="partner")
app.add_typer(merchant_app, name="merchant")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(connection_app, name="connection")
app.add_typer(keys_app, name="keys")
app.add_typer(flows_app, name="flow")
app.add_typer(runs_app, name="run")
app.command("worker")(worker_command)
app.add_typer(cases_app, name="case")
app.add_typer(template_app, name="template")

DbOpt = Annotated[str | None, typer.Option("--database", help="Database URL (default: CROSSDOCK_DATABASE_URL).")]


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    STATE["debug"] = debug


@app.command()
def version() -> None:
    """Print the Crossdock version."""
    console.print(__version__)


def _settings(database: str | None, **overrides: object) -> Settings:
    settings = Settings()
    updates: dict[str, object] = {k: v for k, v in overrides.items() if v is not None}
    if database:
        updates["database_url"] = database
    return settings.model_copy(update=updates) if updates else settings


@db_app.command("upgrade")
def db_upgrade(database: DbOpt = None, revision: str = "head") -> None:
    """Apply database migrations up to REVISION (default: head)."""
    settings = _settings(database)

    async def go() -> None:
        container = build_container(settings)
        try:
            await upgrade(container.db.engine, revision)
        finally:
            await container.close()

    run(go())
    console.print(f"[green]database at {revision}[/] ({settings.resolved_database_url.split('://')[0]})")


sandbox_app = typer.Typer(
    help="The simulators of Shopify, Business Central, NetSuite and ShipStation.", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("up")
def sandbox_up(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8711,
) -> None:
    """Serve every simulator under /shopify, /businesscentral, /netsuite and /shipstation."""
    from crossdock.connectors.sandbox.server import MOUNTS, create_sandbox_app

    console.print(f"[bold]Crossdock sandbox[/] on http://{host}:{port}: " + ", ".join(f"/{m}" for m in MOUNTS))
    uvicorn.run(create_sandbox_app(), host=host, port=port, log_level="warning")


@app.command()
def up(
    demo: Annotated[bool, typer.Option("--demo", help="Seed the demo partner, merchants and users.")] = False,
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int, typer.Option(help="API port.")] = 8700,
    database: DbOpt = None,
    rate: Annotated[float, typer.Option(help="Demo: average orders per second.")] = 1.5,
    traffic: Annotated[bool, typer.Option("--traffic/--no-traffic", help="Demo: run the traffic generator.")] = True,
    seed: Annotated[int, typer.Option(help="Demo: traffic seed (the same seed replays the same day).")] = 7,
    day_seconds: Annotated[float, typer.Option(help="Demo: length of one storefront day, in seconds.")] = 240.0,
    problem_rate: Annotated[float, typer.Option(help="Demo: share of orders with an injected problem.")] = 0.06,
    sandbox_port: Annotated[int, typer.Option(help="Demo: simulators' port (a free one if taken).")] = 8711,
    live: Annotated[
        bool | None, typer.Option("--live/--no-live", help="Demo: live panel (default: when a terminal).")
    ] = None,
) -> None:
    """Run the API, workers and scheduler in one process (embedded mode by default: SQLite in ./.crossdock)."""
    settings = _settings(database)
    settings.api.port = port
    if host:
        settings.api.host = host
    configure_logging(settings.log_level, json=settings.log_json)
    options = None
    if demo:
        from crossdock.demo.traffic import TrafficConfig

        options = DemoOptions(
            traffic=TrafficConfig(rate=rate, seed=seed, day_seconds=day_seconds, problem_rate=problem_rate)
            if traffic
            else None,
            sandbox_port=sandbox_port,
            live=console.is_terminal if live is None else live,
        )
    run(_serve(build_container(settings, role="up"), demo=demo, embedded=True, demo_options=options))


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Interface to bind (0.0.0.0 behind a load balancer).")] = None,
    port: Annotated[int, typer.Option(help="API port.")] = 8700,
    database: DbOpt = None,
) -> None:
    """Run an API node only (distributed mode: run `crossdock worker` processes beside it)."""
    settings = _settings(database)
    settings.api.port = port
    if host:
        settings.api.host = host
    configure_logging(settings.log_level, json=settings.log_json)
    run(_serve(build_container(settings, role="api"), demo=False, embedded=False))


@dataclass
class DemoOptions:
    """What `up --demo` runs beside the API: traffic (None: off), the sandbox port, the live panel."""

    traffic: TrafficConfig | None
    sandbox_port: int = 8711
    live: bool = False


async def _serve(container: Container, *, demo: bool, embedded: bool, demo_options: DemoOptions | None = None) -> None:
    from crossdock.demo.runner import DemoRuntime, quiet_clients, redirect_logs
    from crossdock.demo.seed import seed_demo
    from crossdock.web.app import Hook, create_app

    settings = container.settings
    await upgrade(container.db.engine)
    url = f"http://{settings.api.host}:{settings.api.port}"
    console.print(f"[bold]Crossdock {__version__}[/] on {container.db.dialect} — API {url}  (docs: {url}/docs)")
    runtime: DemoRuntime | None = None
    if demo:
        seeded = await seed_demo(container)
        table = Table(title="Demo tokens (valid 30 days; new ones are issued on every start)", header_style="bold")
        table.add_column("role")
        table.add_column("token")
        for role, token in seeded.tokens.items():
            table.add_row(role, token)
        console.print(table)
        console.print(f'Try: curl -H "Authorization: Bearer {seeded.tokens["partner_admin"]}" {url}/v1/merchants')
        options = demo_options or DemoOptions(traffic=None)
        quiet_clients()
        api_url = (
            f"http://{'127.0.0.1' if settings.api.host in ('0.0.0.0', '::') else settings.api.host}:{settings.api.port}"
        )
        runtime = DemoRuntime(
            container, seeded, api_url, options.traffic, sandbox_port=options.sandbox_port, live=options.live,
            console=console,
        )  # fmt: skip
        world = await runtime.prepare()
        console.print(f"Simulators on {world.sandbox_url} (/shopify, /businesscentral, /netsuite, /shipstation)")
        for name, why in sorted(world.skipped.items()):
            console.print(f"[yellow]not in the demo:[/] {name}: {why}")
        if options.traffic is not None:
            console.print(
                f"Traffic: ~{options.traffic.rate:g} orders/s (seed {options.traffic.seed}); stop with Ctrl-C"
            )
        if options.live:
            log_file = settings.home / "demo.log"
            console.print(f"Logs go to {log_file} while the live panel runs.")
            redirect_logs(log_file)
    from crossdock.engine.runtime import start_embedded, stop_embedded

    startup: list[Hook] = [start_embedded, settle_gc] if embedded else [settle_gc]
    shutdown: list[Hook] = [stop_embedded]  # also closes the engine (its held connections) on an API node
    app_ = create_app(container, on_startup=startup, on_shutdown=shutdown)
    config = uvicorn.Config(
        app_,
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        http=CoalescingHttpToolsProtocol,
    )
    server = uvicorn.Server(config)
    demo_task = asyncio.create_task(runtime.run(server)) if runtime is not None else None
    try:
        await server.serve()
    finally:
        if demo_task is not None:
            demo_task.cancel()
            await asyncio.gather(demo_task, return_exceptions=True)
        if runtime is not None:
            await runtime.stop()
        await container.close()


__all__ = ["app"]
