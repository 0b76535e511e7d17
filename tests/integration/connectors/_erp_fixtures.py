"""Shared helpers for the Business Central and NetSuite contract tests: clocks, fast retries, seed data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from crossdock.connectors.sandbox.serve import BackgroundServer, serve_in_thread
from crossdock.connectors.transport import RetryPolicy

FAST_RETRY = RetryPolicy(max_attempts=6, base_delay_s=0.005, max_delay_s=0.05, max_retry_after_s=5)


class FakeClock:
    """A settable clock for token lifetimes and timestamp windows."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Counter:
    """An `acquire` hook that counts how often the client asked for permission to send."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1


@contextmanager
def serve_mounted(prefix: str, app: FastAPI) -> Iterator[tuple[BackgroundServer, str]]:
    """Serve `app` mounted under `prefix`, as the combined sandbox server does; yields (server, base URL)."""
    parent = FastAPI()
    parent.mount(prefix, app)
    with serve_in_thread(parent) as server:
        yield server, server.url + prefix


@dataclass
class BCSeed:
    company_id: str
    items: dict[str, dict[str, Any]]
    customers: dict[str, dict[str, Any]]


BC_ITEMS = [
    {"number": "1000", "displayName": "Bicycle", "unitPrice": 100.0, "inventory": 10.0},
    {"number": "1001", "displayName": "Helmet", "unitPrice": 25.5, "inventory": 100.0},
    {"number": "SVC-1", "displayName": "Assembly", "type": "Service", "unitPrice": 15.0},
]
BC_CUSTOMERS = [
    {"number": "C0001", "displayName": "Adatum", "creditLimit": 0.0},
    {"number": "C0002", "displayName": "Trey Research", "creditLimit": 500.0, "balanceDue": 450.0},
    {"number": "C0003", "displayName": "Blocked Ltd", "blocked": "All"},
]
