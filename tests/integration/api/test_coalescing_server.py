"""The API's uvicorn protocol: one socket write per response, and responses still arrive intact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from crossdock.connectors.sandbox.serve import free_port
from crossdock.web.server import CoalescingHttpToolsProtocol, CoalescingTransport

WRITES: list[int] = []  # the sizes of the real transport's writes, across connections


class _CountingProtocol(CoalescingHttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        real_write = transport.write

        def write(data: Any) -> None:
            WRITES.append(len(data))
            real_write(data)

        class Counting:
            def __getattr__(self, name: str) -> Any:
                return write if name == "write" else getattr(transport, name)

        super().connection_made(Counting())  # type: ignore[arg-type]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)  # each chunk in its own loop tick
        await send({"type": "http.response.body", "body": b""})
        return
    body = b'{"ok": true, "path": "%s"}' % scope["path"].encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server() -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off", http=_CountingProtocol)
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    WRITES.clear()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        await task


async def test_each_response_leaves_in_one_write_and_keep_alive_works(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        for i in range(5):
            r = await client.post(f"/hooks/{i}", content=b"{}")
            assert r.status_code == 202 and r.json() == {"ok": True, "path": f"/hooks/{i}"}
    # status line + headers + body: one write each, five responses over one kept-alive connection
    assert len(WRITES) == 5 and all(size > 100 for size in WRITES)


async def test_streamed_chunks_still_arrive_in_order(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        r = await client.get("/stream")
    assert r.status_code == 200 and r.text == "one,two,three"
    assert len(WRITES) >= 3  # chunks sent in separate ticks are not held back for the end


async def test_connection_close_flushes_before_closing(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)  # read until the server closes
    writer.close()
    assert data.startswith(b"HTTP/1.1 202") and data.endswith(b'{"ok": true, "path": "/bye"}')


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.calls.append(("close", b""))

    def abort(self) -> None:
        self.calls.append(("abort", b""))

    def get_write_buffer_size(self) -> int:
        return 7

    def is_closing(self) -> bool:
        return False


async def test_buffer_semantics() -> None:
    loop = asyncio.get_running_loop()
    rec = _Recorder()
    t = CoalescingTransport(rec, loop)  # type: ignore[arg-type]
    t.write(b"HTTP/1.1 200 OK\r\n\r\n")
    t.write(b"")
    t.writelines([b"he", bytearray(b"llo")])
    assert rec.calls == [] and t.get_write_buffer_size() == 19 + 5 + 7
    await asyncio.sleep(0)
    assert rec.calls == [("write", b"HTTP/1.1 200 OK\r\n\r\nhello")]
    t.write(b"bye")
    t.close()  # what is buffered goes out before the close
    assert rec.calls[1:] == [("write", b"bye"), ("close", b"")]
    t.write(b"lost")
    t.abort()  # an abort drops the buffer, like the real transport's
    await asyncio.sleep(0)
    assert rec.calls[3:] == [("abort", b"")]
    assert t.is_closing() is False  # everything else is the real transport's
