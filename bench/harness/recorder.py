"""The ERP endpoint every system posts sales orders to: a tiny aiohttp recorder.

It runs in its own process (so it never shares a GIL with the load generator or
a Python system under test) and records, per order (``external_id`` in the
body), the monotonic time of the first delivery, how many deliveries arrived,
how many distinct ``Idempotency-Key`` values it came under, and the
``total``/``discount`` fields so the harness can check the mapping.

Semantics of an idempotent ERP: a replay under an already-seen key is
deduplicated (200, counted as a harmless ``replay``); the same order under a
*new* key creates a second sales order (201, counted as ``duplicated``); a key
reused for a different order is rejected (409, counted as ``bad``).

``time.monotonic_ns()`` is CLOCK_MONOTONIC, shared by every process on the
machine, so its timestamps compare directly with the load generator's.

Endpoints: ``POST /erp/sales_orders`` (the ERP), ``GET /stats``,
``GET /dump`` (all records as JSON), ``POST /reset``, ``GET /health``.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from typing import Any

import orjson
from aiohttp import web

from .orders import PROBE_ID_MAX

ERP_PATH = "/erp/sales_orders"


class Recorder:
    """In-memory store of deliveries; ``delivered`` mirrors the first-delivery count."""

    def __init__(self, delivered: Any = None) -> None:
        self.delivered = delivered  # multiprocessing.Value('q') shared with the load generator
        self.reset()

    def reset(self) -> None:
        # external_id -> [first_ns, deliveries, total, discount, distinct_keys]
        self.records: dict[str, list] = {}
        self.keys: dict[str, str] = {}  # Idempotency-Key -> external_id
        self.bad = 0  # unparseable body, missing external_id or missing Idempotency-Key
        self.probes = 0
        if self.delivered is not None:
            self.delivered.value = 0

    def record(self, key: str | None, raw: bytes, now_ns: int) -> tuple[int, dict]:
        """Record one delivery; return (HTTP status, response body)."""
        try:
            body = orjson.loads(raw)
            ext = str(body["external_id"])
        except (ValueError, KeyError, TypeError):
            self.bad += 1
            return 400, {"error": "body must be JSON with external_id"}
        if ext.isdigit() and int(ext) < PROBE_ID_MAX:
            self.probes += 1
            return 201, {"id": f"SO-{ext}"}
        if not key:
            self.bad += 1
            return 400, {"error": "Idempotency-Key header required"}
        known = self.keys.get(key)
        if known is not None and known != ext:
            self.bad += 1  # the same Idempotency-Key reused for a different order
            return 409, {"error": "Idempotency-Key already used for another order"}
        rec = self.records.get(ext)
        if rec is None:
            self.records[ext] = [now_ns, 1, body.get("total"), body.get("discount"), 1]
            self.keys[key] = ext
            if self.delivered is not None:
                self.delivered.value += 1
            return 201, {"id": f"SO-{ext}"}
        rec[1] += 1
        if known is None:  # same order under a new key: the ERP creates a second sales order
            self.keys[key] = ext
            rec[4] += 1
            return 201, {"id": f"SO-{ext}-{rec[4]}"}
        return 200, {"id": f"SO-{ext}"}  # idempotent replay: deduplicated by key

    def stats(self) -> dict:
        dups = sum(1 for r in self.records.values() if r[4] > 1)
        replays = sum(r[1] - r[4] for r in self.records.values())
        return {
            "orders": len(self.records),
            "duplicated": dups,
            "replays": replays,
            "bad": self.bad,
            "probes": self.probes,
        }

    def app(self) -> web.Application:
        async def erp(request: web.Request) -> web.Response:
            raw = await request.read()
            status, out = self.record(request.headers.get("Idempotency-Key"), raw, time.monotonic_ns())
            return web.Response(status=status, body=orjson.dumps(out), content_type="application/json")

        async def stats(_: web.Request) -> web.Response:
            return web.Response(body=orjson.dumps(self.stats()), content_type="application/json")

        async def dump(_: web.Request) -> web.Response:
            return web.Response(
                body=orjson.dumps({"records": self.records, **self.stats()}),
                content_type="application/json",
            )

        async def reset(_: web.Request) -> web.Response:
            self.reset()
            return web.json_response({"ok": True})

        async def health(_: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        app = web.Application(client_max_size=1 << 20)
        app.router.add_post(ERP_PATH, erp)
        app.router.add_get("/stats", stats)
        app.router.add_get("/dump", dump)
        app.router.add_post("/reset", reset)
        app.router.add_get("/health", health)
        return app


def serve(port: int, delivered: Any = None, ready: Any = None) -> None:
    """Process entry point: serve the recorder on 127.0.0.1:port until killed."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass

    async def main() -> None:
        runner = web.AppRunner(Recorder(delivered).app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024, reuse_address=True)
        await site.start()
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def start_process(port: int) -> tuple[mp.process.BaseProcess, Any]:
    """Start the recorder in its own (spawned) process; return (process, delivered counter)."""
    ctx = mp.get_context("spawn")
    delivered = ctx.Value("q", 0, lock=False)
    ready = ctx.Event()
    proc = ctx.Process(target=serve, args=(port, delivered, ready), name="erp-recorder", daemon=True)
    proc.start()
    if not ready.wait(30):
        proc.kill()
        raise RuntimeError("recorder did not start")
    return proc, delivered
