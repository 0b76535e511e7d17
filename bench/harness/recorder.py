"""The ERP endpoint every system posts sales orders to: a tiny HTTP recorder.

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
from http import HTTPStatus
from typing import Any

import httptools
import orjson

from .httpproto import ParsedProtocol
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

    def handle(self, method: bytes, path: bytes, key: str | None, body: bytes) -> tuple[int, bytes]:
        """Route one request; return (HTTP status, JSON response body)."""
        if path == _ERP and method == b"POST":
            status, out = self.record(key, body, time.monotonic_ns())
            return status, orjson.dumps(out)
        if method == b"GET" and path == b"/stats":
            return 200, orjson.dumps(self.stats())
        if method == b"GET" and path == b"/dump":
            return 200, orjson.dumps({"records": self.records, **self.stats()})
        if method == b"POST" and path == b"/reset":
            self.reset()
            return 200, b'{"ok":true}'
        if method == b"GET" and path == b"/health":
            return 200, b'{"ok":true}'
        return 404, b'{"error":"not found"}'


_ERP = ERP_PATH.encode()
_MAX_BODY = 1 << 20


class _Http(ParsedProtocol):
    """HTTP/1.1 keep-alive server connection for the recorder, parsed by httptools.

    Every system under test posts each order here, on the same two cores, so the
    recorder must cost as little per request as it can: a web framework's request
    and response objects cost ~50 us a request, this ~15. Requests are answered
    synchronously in arrival order, so pipelined requests are answered in order.
    """

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.parser = httptools.HttpRequestParser(self)
        self._reset()

    def _reset(self) -> None:
        self.key: str | None = None
        self.body: list[bytes] = []
        self.size = 0

    def parse_failed(self) -> None:
        self._reply(400, b'{"error":"malformed HTTP request"}', close=True)

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"idempotency-key":
            self.key = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size <= _MAX_BODY:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.size > _MAX_BODY:
            self._reply(413, b'{"error":"body too large"}', close=True)
            return
        path = self.url.split(b"?", 1)[0]
        status, out = self.rec.handle(self.parser.get_method(), path, self.key, b"".join(self.body))
        self._reset()
        self._reply(status, out, close=not self.parser.should_keep_alive())

    def _reply(self, status: int, body: bytes, close: bool = False) -> None:
        assert self.transport is not None
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (
            status,
            HTTPStatus(status).phrase.encode(),
            len(body),
            b"Connection: close\r\n" if close else b"",
        )
        self.transport.write(head + body)
        if close:
            self.transport.close()


def serve(port: int, delivered: Any = None, ready: Any = None) -> None:
    """Process entry point: serve the recorder on 127.0.0.1:port until killed."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass

    async def main() -> None:
        rec = Recorder(delivered)
        loop = asyncio.get_running_loop()
        await loop.create_server(lambda: _Http(rec), "127.0.0.1", port, backlog=1024, reuse_address=True)
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
