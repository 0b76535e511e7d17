"""Load generator: posts signed Shopify webhooks, closed-loop or open-loop.

Runs in its own spawned process (asyncio on uvloop when available) so it never
shares a GIL with the recorder or a Python system under test. Every request is
serialized -- body, HMAC and headers -- before the clock starts, and sent on
keep-alive connections whose responses httptools parses: the generator shares
the machine with the system under test, so it must cost as little CPU per
request as it can (a full HTTP client object per request cost ~0.2 ms).

* **closed** loop: ``concurrency`` workers (32) each post, wait for the ack and
  post again. Requests started before ``warmup`` has elapsed are flagged as
  warm-up. A backlog guard pauses posting while more than ``max_backlog``
  acked orders are still undelivered at the ERP recorder (read from a shared
  counter), so a system that acks faster than it delivers measures its
  sustainable delivery rate instead of growing an unbounded queue.
* **open** loop: requests are started on a fixed schedule (``rate`` per
  second) regardless of acks; latency is measured from the *scheduled* send
  time, so queueing inside the generator or the system is not hidden
  (no coordinated omission).

Each request yields ``(order_id, t_send_ns, t_ack_ns, status, warmup, lag_ns)``
with ``time.monotonic_ns()`` timestamps (status -1 = transport error/timeout);
``lag_ns`` is how late the generator actually started the request (open loop:
vs the schedule) -- a large lag means the generator, not the system, was the
bottleneck.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson

from .httpproto import ParsedProtocol
from .orders import make_webhook

PHASE_SPAN = 2_000_000  # order ids reserved per phase


@dataclass
class Phase:
    """What one load-generator run does."""

    url: str
    mode: str  # "closed" | "open"
    duration: float  # measured seconds
    id_base: int
    warmup: float = 0.0  # closed loop only
    concurrency: int = 32
    rate: float = 0.0  # open loop only, requests/s
    max_backlog: int = 256
    open_connections: int = 64  # open loop: keep-alive pool; excess requests queue (timed)
    timeout: float = 30.0
    pool_cap: int = 40_000  # precomputed webhooks for a closed-loop phase


@dataclass
class PhaseResult:
    """Raw per-request samples plus the measured window."""

    mode: str
    t_start_ns: int  # start of the measured window (after warm-up)
    t_end_ns: int
    rows: list  # [order_id, t_send_ns, t_ack_ns, status, warmup(0/1), send_lag_ns]
    rate: float = 0.0
    cpu_s: float = 0.0  # the load generator's own CPU seconds for the phase

    @classmethod
    def from_dict(cls, d: dict) -> PhaseResult:
        return cls(**d)


_FIXED_HEADERS = "User-Agent: crossdock-bench-loadgen\r\nAccept: */*\r\n"


class _Webhooks:
    """Precomputed signed webhooks, each already serialized as one HTTP/1.1 request."""

    def __init__(self, url: str, base: int, n: int) -> None:
        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.head = f"POST {u.path or '/'} HTTP/1.1\r\nHost: {u.netloc}\r\n{_FIXED_HEADERS}"
        self.base = base
        self.items = [self._request(base + i) for i in range(n)]
        self.i = 0

    def _request(self, order_id: int) -> tuple[int, bytes]:
        wh = make_webhook(order_id)
        headers = "".join(f"{k}: {v}\r\n" for k, v in wh.headers.items())
        return order_id, f"{self.head}{headers}Content-Length: {len(wh.body)}\r\n\r\n".encode() + wh.body

    def next(self) -> tuple[int, bytes]:
        i = self.i
        self.i += 1
        if i < len(self.items):
            return self.items[i]
        return self._request(self.base + i)  # pool exhausted: sign on the fly


class _Conn(ParsedProtocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight.

    Responses are parsed by httptools (llhttp, the parser uvicorn uses) and completions
    are plain callbacks into the :class:`_Client`: no task, future or request object
    per request. The generator shares the two cores with the system under test, and
    every microsecond it spends is one the system cannot.
    """

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.req: tuple[int, int, int, int] | None = None  # order id, t_send, warm-up flag, t_submit
        self.sent_ns = 0  # when the request in flight was written (0 = none in flight)
        self.idle_since = 0
        self.closed = False

    # -- asyncio.Protocol (bytes go to the parser: see `ParsedProtocol`) -----------------
    def parse_failed(self) -> None:
        self.close()
        self._finish(-1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._finish(-1)

    # -- httptools callback -------------------------------------------------------------
    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if not self.parser.should_keep_alive():
            self.close()
        self._finish(status)

    # -- client side --------------------------------------------------------------------
    def send(self, raw: bytes, req: tuple[int, int, int, int]) -> None:
        self.req = req
        self.sent_ns = time.monotonic_ns()
        assert self.transport is not None
        self.transport.write(raw)

    def _finish(self, status: int) -> None:
        req, self.req = self.req, None
        if req is not None:
            self.sent_ns = 0
            self.idle_since = time.monotonic_ns()
            self.client.finished(self, req, status)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Client:
    """Up to ``limit`` keep-alive connections to one server; requests queue for a free one.

    Each finished request appends ``[order_id, t_send, t_ack, status, warm, lag]`` to
    ``rows`` and then calls ``on_result(status)``.
    """

    #: Reuse an idle connection only if it has been idle for less than this: servers close
    #: idle keep-alive connections after a few seconds (Node.js and uvicorn: 5 s), and a
    #: request written as the server closes would be lost to a race, not to the system.
    max_idle_ns = 2_000_000_000

    def __init__(self, host: str, port: int, limit: int, timeout: float, rows: list) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.timeout_ns = int(timeout * 1e9)
        self.rows = rows
        self.on_result: Any = None
        self.conns: set[_Conn] = set()
        self.idle: list[_Conn] = []  # LIFO: the most recently used connection first
        self.queue: deque[tuple[tuple[int, bytes], int, int]] = deque()
        self.opening = 0
        self.pending = 0  # submitted, not finished
        self.quiet: asyncio.Future | None = None  # resolved when pending drops to 0
        self.loop = asyncio.get_running_loop()
        self.expiry = self.loop.create_task(self._expire())

    def submit(self, item: tuple[int, bytes], t_send: int, warm: int) -> None:
        """Send ``item`` (order id, raw request) now, or as soon as a connection is free."""
        self.pending += 1
        now = time.monotonic_ns()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < self.max_idle_ns:
                conn.send(item[1], (item[0], t_send, warm, now))
                return
            self._drop(conn)
        self.queue.append((item, t_send, warm))
        self._open_for_queue()

    def finished(self, conn: _Conn, req: tuple[int, int, int, int], status: int) -> None:
        order_id, t_send, warm, t_submit = req
        self.rows.append([order_id, t_send, time.monotonic_ns(), status, warm, t_submit - t_send])
        if conn.closed:
            self._drop(conn)
            self._open_for_queue()
        else:
            self._next(conn)
        self._settle(status)

    def _next(self, conn: _Conn) -> None:
        """Give a free connection the oldest queued request, or keep it idle."""
        if self.queue:
            (order_id, raw), t_send, warm = self.queue.popleft()
            conn.send(raw, (order_id, t_send, warm, time.monotonic_ns()))
        else:
            self.idle.append(conn)

    def _settle(self, status: int) -> None:
        self.pending -= 1
        if self.on_result is not None:
            self.on_result(status)
        if self.pending == 0 and self.quiet is not None and not self.quiet.done():
            self.quiet.set_result(None)

    def _open_for_queue(self) -> None:
        while len(self.queue) > self.opening and len(self.conns) + self.opening < self.limit:
            self.opening += 1
            self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            _, conn = await self.loop.create_connection(lambda: _Conn(self), self.host, self.port)
        except OSError:
            self.opening -= 1
            if self.queue:  # the request this connection was for fails; the next one retries
                (order_id, _), t_send, warm = self.queue.popleft()
                now = time.monotonic_ns()
                self.rows.append([order_id, t_send, now, -1, warm, now - t_send])
                self._settle(-1)
                self._open_for_queue()
            return
        self.opening -= 1
        self.conns.add(conn)
        self._next(conn)

    def _drop(self, conn: _Conn) -> None:
        conn.close()
        self.conns.discard(conn)

    async def _expire(self) -> None:
        """Abort requests that have waited longer than the timeout (status -1)."""
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic_ns()
            for conn in list(self.conns):
                if conn.sent_ns and now - conn.sent_ns > self.timeout_ns:
                    conn.close()

    async def wait_quiet(self) -> None:
        """Return once every submitted request has finished."""
        if self.pending:
            self.quiet = self.loop.create_future()
            await self.quiet

    def close(self) -> None:
        self.expiry.cancel()
        for conn in list(self.conns):
            self._drop(conn)


async def _closed(p: Phase, delivered: Any) -> PhaseResult:
    est = int(4000 * (p.warmup + p.duration)) + 200
    hooks = _Webhooks(p.url, p.id_base, min(p.pool_cap, est))
    rows: list = []
    client = _Client(hooks.host, hooks.port, p.concurrency, p.timeout, rows)
    loop = asyncio.get_running_loop()
    cpu0 = time.process_time()  # after precomputing: only the sending is charged
    base_delivered = delivered.value if delivered is not None else 0
    counters = {"started": 0, "failed": 0, "parked": 0, "finished": 0}
    now = time.monotonic_ns()
    t_measure = now + int(p.warmup * 1e9)
    t_end = t_measure + int(p.duration * 1e9)
    gate = [True]  # may post; False while the backlog is over the limit
    all_done = loop.create_future()

    # Each of the ``concurrency`` virtual users posts, waits for the ack and posts again.
    def post_next() -> None:
        t_send = time.monotonic_ns()
        if t_send >= t_end:
            counters["finished"] += 1
            if counters["finished"] == p.concurrency and not all_done.done():
                all_done.set_result(None)
        elif not gate[0]:
            counters["parked"] += 1
        else:
            counters["started"] += 1
            client.submit(hooks.next(), t_send, int(t_send < t_measure))

    def on_result(status: int) -> None:
        if 200 <= status < 300:
            post_next()
        else:
            counters["failed"] += 1
            loop.call_later(0.01, post_next)  # a failing system is not hammered in a tight loop

    async def guard() -> None:
        # One poller for all virtual users: the guard must cost ~nothing.
        while not all_done.done():
            backlog = counters["started"] - counters["failed"] - (delivered.value - base_delivered)
            gate[0] = not (backlog > p.max_backlog and time.monotonic_ns() < t_end)
            if gate[0] and counters["parked"]:
                parked, counters["parked"] = counters["parked"], 0
                for _ in range(parked):
                    post_next()
            await asyncio.sleep(0.005)

    client.on_result = on_result
    poller = None
    if delivered is not None and p.max_backlog > 0:
        poller = asyncio.ensure_future(guard())
    try:
        for _ in range(p.concurrency):
            post_next()
        await all_done
        await client.wait_quiet()
        if poller is not None:
            await poller
    finally:
        client.close()
    return PhaseResult("closed", t_measure, t_end, rows, cpu_s=time.process_time() - cpu0)


_MIN_SLEEP = 0.001


async def _open(p: Phase) -> PhaseResult:
    n = max(1, int(p.rate * p.duration))
    hooks = _Webhooks(p.url, p.id_base, n)
    rows: list = []
    client = _Client(hooks.host, hooks.port, p.open_connections, p.timeout, rows)
    cpu0 = time.process_time()
    try:
        interval = 1e9 / p.rate
        t0 = time.monotonic_ns() + 5_000_000
        i = 0
        while i < n:
            now = time.monotonic_ns()
            while i < n and t0 + int(i * interval) <= now:
                client.submit(hooks.next(), t0 + int(i * interval), 0)
                i += 1
            if i < n:
                # The event loop's timers have millisecond resolution (libuv under uvloop): a
                # shorter sleep returns at once, and sleeping until each send spun a whole core
                # at rates above 1,000/s. Wake at most once a millisecond and send what is due;
                # the lateness this adds (< ~1 ms) is in the latencies and the lag column.
                await asyncio.sleep(max(_MIN_SLEEP, (t0 + int(i * interval) - time.monotonic_ns()) / 1e9))
        await client.wait_quiet()
    finally:
        client.close()
    return PhaseResult("open", t0, t0 + int(n * interval), rows, p.rate, time.process_time() - cpu0)


def _entry(phase: dict, delivered: Any, conn: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    p = Phase(**phase)
    res = asyncio.run(_closed(p, delivered) if p.mode == "closed" else _open(p))
    conn.send_bytes(orjson.dumps(asdict(res)))
    conn.close()


def run_phase(phase: Phase, delivered: Any = None) -> PhaseResult:
    """Run one phase in a fresh spawned process and return its samples."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_entry, args=(asdict(phase), delivered, child), name="loadgen")
    proc.start()
    child.close()
    deadline = time.monotonic() + phase.warmup + phase.duration + phase.timeout + 120
    while not parent.poll(0.5):
        if not proc.is_alive() or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"load generator failed (exit code {proc.exitcode})")
    data = orjson.loads(parent.recv_bytes())
    proc.join(10)
    return PhaseResult.from_dict(data)
