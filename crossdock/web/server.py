"""uvicorn's httptools protocol with one socket write per response instead of two.

uvicorn writes the status line and headers when the app sends `http.response.start`, then the body
on `http.response.body`: two `write(2)` calls, two TCP segments and two wake-ups of the client per
response. Halving them did not measurably lower the API's CPU per order on the benchmark (the time
py-spy showed in `write(2)` was mostly the API waiting for a CPU after waking the client; see
docs/performance.md, profile 4), but it halves the segments and the client's wake-ups.

`CoalescingHttpToolsProtocol` hands uvicorn a transport whose `write` appends to a buffer that is
written once at the end of the current event-loop tick (`loop.call_soon`). Everything a response
sends without yielding in between, which is every non-streaming response, leaves in one write; a
streaming response still leaves chunk by chunk. `close()` writes what is buffered first; `abort()`
discards it, as the real transport would. Flow control is unchanged: the real transport still
pauses and resumes the protocol.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A write-buffering proxy for an asyncio transport; every other attribute is the transport's."""

    __slots__ = ("_buffer", "_loop", "_scheduled", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._buffer.append(bytes(data))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        self._scheduled = False
        if not self._buffer:
            return
        data = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
        self._buffer.clear()
        self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._buffer.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self._buffer)) + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
