"""Per-process pool of connector clients, keyed by connection id, shared by every run.

A client is built on first use from the connection row (config plain, secrets decrypted) and kept
so token caches, HTTP keep-alive pools and client-side pacers survive across runs. Every lease
re-reads the row's `updated_at` at most every `revalidate_s` seconds; a changed row retires the
old client (closed once its last in-flight call returns) and builds a new one.

Tenancy: the row is read by id with Core (no session scope exists inside a worker), so the pool
itself checks that it belongs to the run's merchant. Another merchant's connection and a missing
one fail identically (CONFIG / not_found), so ids of other tenants cannot be probed.

Rate budgets: each client's `acquire` hook books a token in the engine's database-backed bucket
of the account `connection id` (`ctx.acquire`, shared by every worker). The bucket is configured
with the system's default budget (below) when this process first builds the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy import select

from crossdock.connections import service as connections
from crossdock.connections.models import Connection
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.core.errors import CrossdockError

AcquireFn = Callable[[str], Awaitable[float]]

# The acquire function of the action currently running in this task (ctx.acquire). Pooled clients
# outlive any one run, so their hook looks it up at call time instead of capturing a context.
current_acquire: ContextVar[AcquireFn | None] = ContextVar("crossdock_connector_acquire", default=None)


@dataclass(frozen=True)
class RateBudget:
    """A token bucket: `rate_per_s` sustained, at most `burst` saved up."""

    rate_per_s: float
    burst: float


# Chosen so that no vendor window is exceeded even when the bucket starts full:
# - Shopify REST: leaky bucket of 40 draining at 2/s (Standard plan) → 2/s, burst 40.
# - Business Central: 6,000 requests per 5-minute sliding window ≈ 20/s → 19.5/s + 50 (5,900 per 5 min).
# - NetSuite: concurrency 5 per account (shared tier), ~0.5 s a call → ~10/s, burst 5.
# - ShipStation V1: 40 per fixed minute → 39/min + 1, so no 60-second window sees more than 40.
# - SMTP and chat webhooks: polite defaults (Slack allows about 1 message/s per webhook).
DEFAULT_BUDGETS: dict[str, RateBudget] = {
    "shopify": RateBudget(2.0, 40.0),
    "businesscentral": RateBudget(19.5, 50.0),
    "netsuite": RateBudget(10.0, 5.0),
    "shipstation": RateBudget(39 / 60, 1.0),
    "smtp": RateBudget(5.0, 10.0),
    "chat": RateBudget(1.0, 5.0),
}


class ClientBuilder(Protocol):
    """Builds a client for one connection; `acquire` must be awaited before every request."""

    def __call__(
        self, config: Any, secrets: Any, *, acquire: Callable[[], Awaitable[None]], budget: RateBudget
    ) -> Any: ...


@dataclass
class PooledClient:
    """One connection's client and what it was built from."""

    connection_id: str
    system: str
    partner_id: str | None
    merchant_id: str | None
    updated_at: datetime
    config: BaseModel
    secrets: BaseModel
    client: Any
    checked_at: float
    users: int = 0
    retired: bool = False


@dataclass
class ConnectionRow:
    """The columns of a connection row the pool and the webhook intake use."""

    id: str
    system: str
    status: str
    partner_id: str | None
    merchant_id: str | None
    updated_at: datetime
    config: dict[str, Any] = field(default_factory=dict)
    secrets_ciphertext: str = ""


def connection_error(message: str, code: str, system: str, category: FailureCategory) -> ConnectorError:
    """A CONFIG failure about the connection a step names (fix the flow or the connection)."""
    return ConnectorError(message, kind=FailureKind.CONFIG, category=category, system=system, vendor_code=code)


async def read_connection(container: Any, connection_id: str, *, full: bool = True) -> ConnectionRow | None:
    """A connection row by id, read with Core (callers check the tenant themselves)."""
    cols: list[Any] = [
        Connection.id,
        Connection.system,
        Connection.status,
        Connection.partner_id,
        Connection.merchant_id,
        Connection.updated_at,
    ]
    if full:
        cols += [Connection.config, Connection.secrets_ciphertext]
    async with container.db.reads.connect() as conn:
        row = (await conn.execute(select(*cols).where(Connection.id == connection_id))).first()
    return None if row is None else ConnectionRow(*row)


def parse_connection(container: Any, row: ConnectionRow) -> tuple[BaseModel, BaseModel]:
    """The connection's parsed config and decrypted secrets (via the connections service)."""
    transient = Connection(system=row.system, config=row.config, secrets_ciphertext=row.secrets_ciphertext)
    try:
        return connections.credentials(transient, container.connectors, container.secrets)
    except CrossdockError as exc:
        raise connection_error(
            f"Connection {row.id} cannot be used: {exc.message}", "connection_invalid", row.system,
            FailureCategory.AUTH,
        ) from exc  # fmt: skip


async def load_connection(container: Any, connection_id: str, system: str) -> tuple[ConnectionRow, Any, Any]:
    """Row, config and secrets of an active connection of `system` (webhook intake: no merchant check)."""
    row = await read_connection(container, connection_id)
    if row is None or row.system != system or row.status != "active":
        raise connection_error(
            f"No active {system} connection {connection_id!r}.", "connection_not_found", system,
            FailureCategory.NOT_FOUND,
        )  # fmt: skip
    config, secrets = parse_connection(container, row)
    return row, config, secrets


class ConnectorPool:
    """Connector clients by connection id for one process (one per container)."""

    def __init__(
        self,
        container: Any,
        rates: Any,
        builders: dict[str, ClientBuilder],
        *,
        budgets: dict[str, RateBudget] | None = None,
        revalidate_s: float = 5.0,
    ) -> None:
        self.container = container
        self.rates = rates
        self.builders = builders
        self.budgets = {**DEFAULT_BUDGETS, **(budgets or {})}
        self.revalidate_s = revalidate_s
        self._clients: dict[str, PooledClient] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.built = 0

    # -- leases ---------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lease(self, connection_id: str, *, merchant_id: str | None, system: str) -> AsyncIterator[PooledClient]:
        """The pooled client of `connection_id`, checked against the run's merchant and the action's system."""
        entry = await self._current(connection_id, merchant_id=merchant_id, system=system)
        entry.users += 1
        try:
            yield entry
        finally:
            entry.users -= 1
            if entry.retired and entry.users == 0:
                await _close(entry.client)

    async def _current(self, connection_id: str, *, merchant_id: str | None, system: str) -> PooledClient:
        entry = self._clients.get(connection_id)
        now = time.monotonic()
        if entry is not None and now - entry.checked_at < self.revalidate_s:
            self._check(entry.connection_id, entry.system, entry.merchant_id, merchant_id, system)
            return entry
        lock = self._locks.setdefault(connection_id, asyncio.Lock())
        async with lock:
            entry = self._clients.get(connection_id)
            if entry is not None and time.monotonic() - entry.checked_at < self.revalidate_s:
                self._check(entry.connection_id, entry.system, entry.merchant_id, merchant_id, system)
                return entry
            head = await read_connection(self.container, connection_id, full=False)
            self._check(
                connection_id, head.system if head else system, head.merchant_id if head else None, merchant_id, system
            )
            assert head is not None  # _check refuses a missing row
            if head.status != "active":
                raise connection_error(
                    f"Connection {connection_id} is {head.status}; enable it to run this step.",
                    "connection_disabled",
                    system,
                    FailureCategory.CONNECTION,
                )
            if entry is not None and entry.updated_at == head.updated_at:
                entry.checked_at = time.monotonic()
                return entry
            if entry is not None:
                await self._retire(entry)
            return await self._build(connection_id)

    def _check(
        self,
        connection_id: str,
        actual_system: str,
        owner: str | None,
        merchant_id: str | None,
        system: str,
    ) -> None:
        if owner is None or owner != merchant_id:
            raise connection_error(
                f"Connection {connection_id!r} was not found for this merchant; a flow may only use its own "
                "merchant's connections.",
                "connection_not_found",
                system,
                FailureCategory.NOT_FOUND,
            )
        if actual_system != system:
            raise connection_error(
                f"Connection {connection_id} is a {actual_system} connection; this action needs {system}.",
                "connection_wrong_system",
                system,
                FailureCategory.MAPPING_GAP,
            )

    async def _build(self, connection_id: str) -> PooledClient:
        row = await read_connection(self.container, connection_id)
        if row is None:  # deleted between the two reads
            raise connection_error(
                f"Connection {connection_id!r} was not found.", "connection_not_found", "unknown",
                FailureCategory.NOT_FOUND,
            )  # fmt: skip
        config, secrets = parse_connection(self.container, row)
        budget = self.budgets.get(row.system, RateBudget(10.0, 10.0))
        await self.rates.configure(connection_id, budget.rate_per_s, budget.burst)
        builder = self.builders.get(row.system)
        client = None if builder is None else builder(config, secrets, acquire=self._hook(connection_id), budget=budget)
        entry = PooledClient(
            row.id, row.system, row.partner_id, row.merchant_id, row.updated_at, config, secrets, client,
            time.monotonic(),
        )  # fmt: skip
        self._clients[connection_id] = entry
        self.built += 1
        return entry

    def _hook(self, account: str) -> Callable[[], Awaitable[None]]:
        rates = self.rates

        async def acquire() -> None:
            fn = current_acquire.get() or rates.acquire
            await fn(account)

        return acquire

    async def _retire(self, entry: PooledClient) -> None:
        entry.retired = True
        self._clients.pop(entry.connection_id, None)
        if entry.users == 0:
            await _close(entry.client)

    async def aclose(self) -> None:
        """Close every client (process shutdown)."""
        entries, self._clients = list(self._clients.values()), {}
        for entry in entries:
            entry.retired = True
            await _close(entry.client)


async def _close(client: Any) -> None:
    closer = getattr(client, "aclose", None)
    if closer is not None:
        await closer()
