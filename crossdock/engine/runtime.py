"""Running the engine: embedded in the API process (`crossdock up`) or as a worker process.

Embedded: `start_embedded(container)` / `stop_embedded(container)` are the API's startup and
shutdown hooks; they run `settings.worker.embedded_workers` worker loops and a scheduler in the
API's event loop. Distributed: `crossdock worker` (or `python -m crossdock.engine.worker_main`)
runs `run_worker_process`, until SIGTERM/SIGINT, then drains and releases its runs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from crossdock.bootstrap import Container, build_container
from crossdock.core.loop import settle_gc
from crossdock.core.settings import Settings
from crossdock.engine.core import Engine, engine_of
from crossdock.engine.scheduler import Scheduler
from crossdock.engine.worker import Worker

log = logging.getLogger("crossdock.engine.runtime")

Periodic = tuple[float, Callable[[], Awaitable[Any]]]


def periodic_jobs(container: Container) -> list[Periodic]:
    """The periodic jobs bootstrap declared, bound to this container."""
    return [(every_s, functools.partial(fn, container)) for every_s, fn in container.extras.get("engine.periodic", ())]


class EngineRuntime:
    """Worker loops and a scheduler sharing one event loop and one database pool."""

    def __init__(
        self,
        engine: Engine,
        *,
        workers: int = 1,
        scheduler: bool = True,
        periodic: list[Periodic] | None = None,
        **worker_options: Any,
    ) -> None:
        self.engine = engine
        self.periodic = list(periodic or []) if scheduler else []
        self.workers = [Worker(engine, **worker_options) for _ in range(max(0, workers))]
        self.scheduler = Scheduler(engine) if scheduler else None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(w.run(self._stop), name=f"crossdock-worker-{i}") for i, w in enumerate(self.workers)
        ]
        if self.scheduler is not None:
            self._tasks.append(asyncio.create_task(self.scheduler.run(self._stop), name="crossdock-scheduler"))
        for i, (every_s, fn) in enumerate(self.periodic):
            self._tasks.append(asyncio.create_task(self._every(every_s, fn), name=f"crossdock-periodic-{i}"))
        log.info("engine runtime started: %d worker loop(s), scheduler=%s", len(self.workers), bool(self.scheduler))

    async def _every(self, every_s: float, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run a domain's periodic job (e.g. the exception desk's sweep) until stopped; never crash."""
        while not self._stop.is_set():
            try:
                await fn()
            except Exception:
                log.exception("periodic job failed; retrying in %.1f s", every_s)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=every_s)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def wait(self) -> None:
        await self._stop.wait()
        await self.stop()

    def request_stop(self) -> None:
        self._stop.set()


async def start_embedded(container: Container) -> None:
    """API startup hook for `crossdock up`: in-process workers and scheduler."""
    engine = engine_of(container)
    runtime = EngineRuntime(
        engine, workers=container.settings.worker.embedded_workers, periodic=periodic_jobs(container)
    )
    container.extras["engine.runtime"] = runtime
    await runtime.start()


async def stop_embedded(container: Container) -> None:
    """API shutdown hook: drain in-process workers, release their runs, close clients."""
    runtime = container.extras.pop("engine.runtime", None)
    if isinstance(runtime, EngineRuntime):
        await runtime.stop()
    engine = container.extras.get("engine")
    if isinstance(engine, Engine):
        await engine.close()


def worker_container(settings: Settings) -> Container:
    """A worker process's services: its PostgreSQL connections carry `worker.postgres_settings`."""
    return build_container(settings, server_settings=settings.worker.postgres_settings, role="worker")


async def run_worker_process(
    settings: Settings,
    *,
    workers: int = 1,
    scheduler: bool = True,
    setup: Callable[[Engine], Any] | None = None,
    **worker_options: Any,
) -> None:
    """The `crossdock worker` process: work until SIGTERM/SIGINT."""
    container = worker_container(settings)
    engine = engine_of(container)
    if setup is not None:
        result = setup(engine)
        if asyncio.iscoroutine(result):
            await result
    runtime = EngineRuntime(
        engine, workers=workers, scheduler=scheduler, periodic=periodic_jobs(container), **worker_options
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, runtime.request_stop)
        except NotImplementedError:  # pragma: no cover - Windows
            pass
    await runtime.start()
    await settle_gc()
    try:
        await runtime.wait()
    finally:
        await engine.close()
        await container.close()
