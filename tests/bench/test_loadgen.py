"""The benchmark's lean HTTP pieces: the load generator's client and the recorder's server.

Both are written on asyncio protocols with httptools so they take as little of the
two cores as they can; these tests hold them to HTTP/1.1 behaviour the systems
under test rely on (keep-alive, ``Connection: close``, chunked bodies, pipelining,
timeouts, refused connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import orjson
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from harness import loadgen, orders, recorder  # noqa: E402

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes] | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0].encode(), headers, body


@contextlib.asynccontextmanager
async def _serve(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/webhooks/shopify"
    finally:
        server.close()


def _phase(url: str, mode: str, **kw: float) -> loadgen.Phase:
    return loadgen.Phase(url=url, mode=mode, id_base=5_000_000, pool_cap=2_000, **kw)  # type: ignore[arg-type]


async def test_closed_loop_sends_signed_webhooks_and_reconnects_after_connection_close() -> None:
    seen: list[int] = []
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                line, headers, body = await _read_request(reader)  # type: ignore[misc]
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            assert line == b"POST /webhooks/shopify HTTP/1.1"
            assert orders.verify(body, headers["x-shopify-hmac-sha256"])
            seen.append(orjson.loads(body)["id"])
            # every third response closes the connection: the client must open a new one
            close = len(seen) % 3 == 0
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\nok"
            )
            await writer.drain()
            if close:
                break
        writer.close()

    async with _serve(handler) as url:
        res = await loadgen._closed(_phase(url, "closed", duration=0.4, concurrency=4), None)
    assert len(res.rows) == len(seen) > 20
    assert {r[3] for r in res.rows} == {200}
    assert sorted(r[0] for r in res.rows) == sorted(seen)  # every row is an order the server saw
    assert len(set(seen)) == len(seen)  # and each order went out once
    assert connections >= len(seen) // 3  # reconnected after each Connection: close
    assert all(r[2] >= r[1] for r in res.rows)


async def test_chunked_responses_and_an_open_loop_schedule() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            writer.write(b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
            await writer.drain()
        writer.close()

    async with _serve(handler) as url:
        res = await loadgen._open(_phase(url, "open", duration=0.5, rate=200.0))
    assert len(res.rows) == 100
    assert {r[3] for r in res.rows} == {202}
    sends = sorted(r[1] for r in res.rows)  # scheduled times, 5 ms apart
    gaps = {round((b - a) / 1e6, 1) for a, b in itertools.pairwise(sends)}
    assert gaps <= {5.0}


async def test_a_server_that_never_answers_times_out_as_errors() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(1.0)
        writer.close()

    async with _serve(handler) as url:
        res = await loadgen._closed(_phase(url, "closed", duration=0.2, concurrency=2, timeout=0.5), None)
    assert len(res.rows) == 2  # one request per worker, each given up on after the timeout
    assert {r[3] for r in res.rows} == {-1}
    assert all(0.45e9 <= r[2] - r[1] < 1.5e9 for r in res.rows)


async def test_refused_connections_are_errors_without_a_busy_loop() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/webhooks/shopify"
    res = await loadgen._closed(_phase(url, "closed", duration=0.3, concurrency=2), None)
    assert res.rows and {r[3] for r in res.rows} == {-1}
    assert len(res.rows) < 2 * 0.3 / 0.01 + 4  # each failing worker backs off 10 ms


@pytest.fixture(scope="module")
def erp() -> Iterator[str]:
    proc, _ = recorder.start_process(port := _free_port())
    yield f"127.0.0.1:{port}"
    proc.kill()
    proc.join(5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sales_order(ext: str) -> bytes:
    return orjson.dumps({"external_id": ext, "total": "1.00", "discount": "0.00"})


def test_open_loop_generator_sleeps_between_sends(erp: str) -> None:
    """At 2,000/s the schedule's gaps (0.5 ms) are below the event loop's timer resolution.

    Sleeping until each send spun the generator's core (~1 CPU second per second); it must
    wake at most once a millisecond and send what is due, so the CPU stays with the system.
    """
    # The recorder answers these webhooks with 400 (no external_id): it is only a fast server here.
    phase = loadgen.Phase(
        url=f"http://{erp}{recorder.ERP_PATH}", mode="open", duration=1.0, rate=2000.0, id_base=5_000_000
    )
    res = loadgen.run_phase(phase)  # a spawned process on uvloop, as in the benchmark
    assert len(res.rows) == 2000
    assert {r[3] for r in res.rows} == {400}
    assert res.cpu_s < 0.5, f"generator used {res.cpu_s:.2f} CPU s for 1 s of sending"
    lags = sorted(r[5] for r in res.rows)
    assert lags[len(lags) // 2] < 5e6  # still on schedule: median lateness under 5 ms


def test_recorder_serves_keep_alive_pipelined_and_chunked_requests(erp: str) -> None:
    host, port = erp.split(":")
    urllib.request.urlopen(urllib.request.Request(f"http://{erp}/reset", method="POST"), timeout=5).read()
    body = _sales_order("7000001")
    one = (
        f"POST {recorder.ERP_PATH} HTTP/1.1\r\nHost: {erp}\r\nIdempotency-Key: k-7000001\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    chunked = (
        f"POST {recorder.ERP_PATH} HTTP/1.1\r\nHost: {erp}\r\nIdempotency-Key: k-7000002\r\n"
        f"Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    body2 = _sales_order("7000002")
    chunked += b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body2[:10], len(body2) - 10, body2[10:])
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        # three requests written at once on one connection: a new order, its replay, a chunked one
        sock.sendall(one + one + chunked)
        data = b""
        while data.count(b"HTTP/1.1 ") < 3 or not data.endswith(b"}"):
            data += sock.recv(65536)
    statuses = [int(part.split(b" ", 1)[0]) for part in data.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [201, 200, 201]  # answered in order; the replay deduplicated by its key
    stats = orjson.loads(urllib.request.urlopen(f"http://{erp}/stats", timeout=5).read())
    assert stats["orders"] == 2 and stats["replays"] == 1 and stats["duplicated"] == 0
    dump = orjson.loads(urllib.request.urlopen(f"http://{erp}/dump", timeout=5).read())
    assert dump["records"]["7000002"][2:4] == ["1.00", "0.00"]


def test_recorder_rejects_bad_requests_with_reasons(erp: str) -> None:
    def post(body: bytes, key: str | None) -> tuple[int, dict]:
        headers = {"Idempotency-Key": key} if key else {}
        req = urllib.request.Request(f"http://{erp}{recorder.ERP_PATH}", data=body, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, orjson.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())

    assert post(b"{not json", "k1")[0] == 400
    assert post(_sales_order("7100001"), None) == (400, {"error": "Idempotency-Key header required"})
    assert post(_sales_order("7100001"), "k-a")[0] == 201
    assert post(_sales_order("7100002"), "k-a")[0] == 409  # key reused for another order
    status, out = post(b"x" * ((1 << 20) + 1), "k-big")
    assert status == 413 and "too large" in out["error"]
    with socket.create_connection(tuple(erp.split(":")), timeout=5) as sock:  # type: ignore[arg-type]
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400 ")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://{erp}/nope", timeout=5)
    assert err.value.code == 404
