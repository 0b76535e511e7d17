"""The base of the harness's lean HTTP/1.1 endpoints (load generator client, ERP recorder server)."""

from __future__ import annotations

import asyncio
from typing import Any

import httptools


class ParsedProtocol(asyncio.Protocol):
    """An asyncio protocol whose bytes go to an httptools parser (``self.parser``, set by the subclass,
    which also receives the parser's callbacks); malformed input calls :meth:`parse_failed`."""

    parser: Any
    transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.parse_failed()

    def parse_failed(self) -> None:
        """Malformed HTTP: by default drop the connection (subclasses answer or record it first)."""
        if self.transport is not None:
            self.transport.close()
