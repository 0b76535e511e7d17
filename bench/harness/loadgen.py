"""Load generator: posts signed Shopify webhooks, closed-loop or open-loop.

Runs in its own spawned process (asyncio + aiohttp, one connector per phase,
uvloop when available) so it never shares a GIL with the recorder or a Python
system under test. Bodies and HMACs are precomputed before the clock starts.

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
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from .orders import Webhook, make_webhook

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


class _Pool:
    def __init__(self, base: int, n: int) -> None:
        self.base = base
        self.items = [make_webhook(base + i) for i in range(n)]
        self.i = 0

    def next(self) -> Webhook:
        i = self.i
        self.i += 1
        if i < len(self.items):
            return self.items[i]
        return make_webhook(self.base + i)  # pool exhausted: sign on the fly


async def _post(session: Any, url: str, wh: Webhook, t_send: int, rows: list, warm: int) -> int:
    t_start = time.monotonic_ns()
    status = -1
    try:
        async with session.post(url, data=wh.body, headers=wh.headers) as resp:
            await resp.read()
            status = resp.status
    except Exception:
        status = -1
    rows.append([wh.order_id, t_send, time.monotonic_ns(), status, warm, t_start - t_send])
    return status


async def _closed(p: Phase, delivered: Any) -> PhaseResult:
    import aiohttp

    est = int(4000 * (p.warmup + p.duration)) + 200
    pool = _Pool(p.id_base, min(p.pool_cap, est))
    rows: list = []
    cpu0 = time.process_time()  # after precomputing: only the sending is charged
    conn = aiohttp.TCPConnector(limit=p.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=p.timeout)
    base_delivered = delivered.value if delivered is not None else 0
    counters = {"started": 0, "failed": 0}
    now = time.monotonic_ns()
    t_measure = now + int(p.warmup * 1e9)
    t_end = t_measure + int(p.duration * 1e9)

    gate = asyncio.Event()  # set = may post; cleared while the backlog is over the limit
    gate.set()
    done = False

    async def guard() -> None:
        # One poller instead of 32 spinning workers: the guard must cost ~nothing.
        while not done:
            backlog = counters["started"] - counters["failed"] - (delivered.value - base_delivered)
            if backlog > p.max_backlog and time.monotonic_ns() < t_end:
                gate.clear()
            else:
                gate.set()
            await asyncio.sleep(0.005)

    async def worker(session: Any) -> None:
        while True:
            await gate.wait()
            t_send = time.monotonic_ns()
            if t_send >= t_end:
                return
            counters["started"] += 1
            st = await _post(session, p.url, pool.next(), t_send, rows, int(t_send < t_measure))
            if not 200 <= st < 300:
                counters["failed"] += 1

    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        poller = None
        if delivered is not None and p.max_backlog > 0:
            poller = asyncio.ensure_future(guard())
        await asyncio.gather(*(worker(session) for _ in range(p.concurrency)))
        done = True
        if poller is not None:
            await poller
    return PhaseResult("closed", t_measure, t_end, rows, cpu_s=time.process_time() - cpu0)


async def _open(p: Phase) -> PhaseResult:
    import aiohttp

    n = max(1, int(p.rate * p.duration))
    pool = _Pool(p.id_base, n)
    rows: list = []
    cpu0 = time.process_time()
    conn = aiohttp.TCPConnector(limit=p.open_connections)
    timeout = aiohttp.ClientTimeout(total=p.timeout)
    tasks = []
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        interval = 1e9 / p.rate
        t0 = time.monotonic_ns() + 5_000_000
        i = 0
        while i < n:
            now = time.monotonic_ns()
            while i < n and t0 + int(i * interval) <= now:
                t_sched = t0 + int(i * interval)
                tasks.append(asyncio.ensure_future(_post(session, p.url, pool.next(), t_sched, rows, 0)))
                i += 1
            if i < n:
                await asyncio.sleep(max(0.0, (t0 + int(i * interval) - time.monotonic_ns()) / 1e9))
        await asyncio.gather(*tasks)
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
