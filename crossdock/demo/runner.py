"""`crossdock up --demo`: the simulators, the demo wiring, the traffic generator and the live panel.

The sandbox (every simulator) is a second uvicorn server in the API's own event loop, on
`sandbox_port` (8711 by default, or a free port when that one is taken). `DemoRuntime.prepare`
seeds it and provisions the merchants' connections and instances before the API starts;
`DemoRuntime.run` starts the traffic and the panel once the API answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console
from rich.live import Live
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.connectors.actions import RateBudget, register_connector_actions
from crossdock.connectors.sandbox.serve import free_port
from crossdock.connectors.sandbox.server import Sandbox, create_sandbox_app
from crossdock.connectors.sandbox.shopify_orders import ORDER_ID_BASE
from crossdock.connectors.sandbox.shopify_state import ShopifySimulator
from crossdock.core.context import Actor
from crossdock.demo import sandbox as sb
from crossdock.demo.orders import ORDER_EVENT_PREFIX
from crossdock.demo.progress import render, snapshot, summary_line
from crossdock.demo.provision import DemoWorld, provision, retire_previous_runs
from crossdock.demo.seed import DemoTenants
from crossdock.demo.traffic import TrafficConfig, TrafficGenerator
from crossdock.engine.core import engine_of
from crossdock.engine.models import Run

log = logging.getLogger("crossdock.demo")
# The demo shops are on Shopify Plus (REST bucket 400, 20/s), so a storefront day fits in minutes;
# the connections' budget stays a little under the simulated limit, as docs/connectors.md advises.
SHOPIFY_PLUS: dict[str, Any] = {"rest_capacity": 400, "rest_leak_rate": 20.0}
SHOPIFY_PLUS_BUDGET = RateBudget(18.0, 40.0)


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the signal handlers to the API server beside it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


async def serve_sandbox(
    sandbox: Sandbox, port: int | None, host: str = "127.0.0.1"
) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    """Serve the simulators in this event loop; returns the server and its base URL."""
    chosen = port if port and _port_free(host, port) else free_port()
    config = uvicorn.Config(
        create_sandbox_app(sandbox), host=host, port=chosen, log_config=None, access_log=False, lifespan="off"
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(), name="crossdock-demo-sandbox")
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start
        await asyncio.sleep(0.02)
    return server, task, f"http://{host}:{chosen}"


def redirect_logs(path: Path) -> None:
    """Send the root logger's output to `path` (same format), so it does not break the live panel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    formatter = root.handlers[0].formatter if root.handlers else None
    handler = logging.FileHandler(path, encoding="utf-8")
    if formatter is not None:
        handler.setFormatter(formatter)
    root.handlers[:] = [handler]


def quiet_clients() -> None:
    """The demo makes thousands of HTTP calls; keep their per-request lines out of the log."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


async def next_order_offset(container: Container) -> int:
    """Order ids of this start begin after the last one stored (a restart never reuses one)."""
    async with container.db.session(Actor.system().scope) as s:
        keys = (
            await s.scalars(
                select(Run.dedup_key)
                .where(Run.dedup_key.contains(ORDER_EVENT_PREFIX))
                .order_by(Run.id.desc())  # ULIDs: creation order
                .limit(2000)
            )
        ).all()
    last = max((int(k.rsplit(ORDER_EVENT_PREFIX, 1)[1]) for k in keys if k), default=ORDER_ID_BASE - 1)
    return -(-(last + 1 - ORDER_ID_BASE) // 1000) * 1000


@dataclass
class DemoRuntime:
    """The demo's moving parts around one API process."""

    container: Container
    tenants: DemoTenants
    api_url: str
    traffic: TrafficConfig | None
    sandbox_port: int | None = 8711
    live: bool = False
    console: Console = field(default_factory=Console)
    sandbox: Sandbox = field(default_factory=lambda: Sandbox(shopify=ShopifySimulator(**SHOPIFY_PLUS)))
    world: DemoWorld | None = None
    generator: TrafficGenerator | None = None
    _server: uvicorn.Server | None = None
    _server_task: asyncio.Task[None] | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def prepare(self) -> DemoWorld:
        """Serve and seed the simulators, then wire the merchants to them (before the API starts)."""
        register_connector_actions(engine_of(self.container), self.container, budgets={"shopify": SHOPIFY_PLUS_BUDGET})
        self._server, self._server_task, sandbox_url = await serve_sandbox(self.sandbox, self.sandbox_port)
        catalog = sb.seed_sandbox(self.sandbox)
        self.world = await provision(
            self.container, self.tenants, catalog=catalog, sandbox_url=sandbox_url, api_url=self.api_url
        )
        retired = await retire_previous_runs(self.container, self.world)
        if retired:
            log.info("cancelled %d unfinished demo runs of an earlier start (their simulators are gone)", retired)
            self.console.print(
                f"Cancelled {retired} unfinished demo runs of an earlier start (their simulated orders are gone)."
            )
        aurora_ss = self.world.connections["aurora"]["shipstation"]
        self.sandbox.shipstation.subscribe(
            f"{self.api_url}/hooks/shipstation/{aurora_ss}/{sb.SHIPSTATION_WEBHOOK_TOKEN}",
            "SHIP_NOTIFY",
            None,
            "crossdock",
        )
        if self.traffic is not None:
            self.traffic.id_offset = await next_order_offset(self.container)
            self.generator = TrafficGenerator(self.world, self.sandbox, catalog, self.traffic)
        return self.world

    async def run(self, api: uvicorn.Server) -> None:
        """Once the API serves: traffic and progress, until the API begins to shut down."""
        while not api.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.05)
        if self.generator is not None:
            self._tasks.append(asyncio.create_task(self.generator.run(), name="crossdock-demo-traffic"))
        progress = asyncio.create_task(self._progress(), name="crossdock-demo-progress")
        self._tasks.append(progress)
        while not api.should_exit:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.2)
        await self.stop()

    async def _progress(self) -> None:
        assert self.world is not None
        stats = self.generator.stats if self.generator else None
        if not self.live:
            while True:
                await asyncio.sleep(15)
                with contextlib.suppress(Exception):
                    log.info(summary_line(await snapshot(self.container, self.world), stats))
        with Live(console=self.console, refresh_per_second=2, transient=False) as live:
            while True:
                try:
                    live.update(render(await snapshot(self.container, self.world), stats, self.world))
                except Exception:  # the panel must never take the demo down
                    log.exception("demo panel refresh failed")
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Stop the traffic and the panel, then the simulators (idempotent)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server_task, timeout=5)
