"""Webhook and event intake with group commit.

A webhook is acknowledged only after the run it starts is committed. The run is the stored event:
its `input` is the verified payload and its `trigger` names the endpoint, an event id and the kept
headers (the payload is stored once). Concurrent requests are batched: the requests that arrive
while one write is in flight are written together by the next one, a single multi-row
`INSERT ... ON CONFLICT (dedup_key) DO NOTHING RETURNING` (on PostgreSQL in autocommit: one round
trip, atomic as any single statement), and each request awaits its batch's commit. A duplicate
delivery (same dedup key) creates nothing and returns the run of the first delivery.

Verification is pluggable: `engine.register_webhook_verifier(kind, fn)` with
`fn(raw_body, headers, endpoint) -> VerifiedEvent`. The built-in `generic` verifier checks an
optional HMAC-SHA256 signature and takes the dedup key from `Idempotency-Key`/`X-Event-Id` (else a
hash of the body). Connector routes (e.g. Shopify) verify their own way and call `store_event`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from crossdock.core.cache import TTLCache
from crossdock.core.db import Database
from crossdock.core.errors import CrossdockError, ErrorCode, NotFound
from crossdock.core.ids import new_id
from crossdock.core.metrics import Metrics
from crossdock.core.rawpg import RawStatement
from crossdock.engine.batching import GroupCommitter
from crossdock.engine.bulk import array_params, insert_from_arrays
from crossdock.engine.journal import RUNS
from crossdock.engine.models import Trigger

# Connector routes look their endpoints up on every webhook; a short cache keeps that off the database.
ENDPOINTS_TTL_S = 1.0

if TYPE_CHECKING:
    from crossdock.engine.core import Engine, VerifiedEvent

_KEEP_HEADERS = ("content-type", "user-agent", "x-event-id", "idempotency-key", "x-request-id")


@dataclass(frozen=True)
class Endpoint:
    """A webhook trigger of a published flow, as intake needs it."""

    id: str
    flow_id: str
    version_id: str
    partner_id: str | None
    merchant_id: str | None
    config: dict[str, Any]


@dataclass(frozen=True)
class IntakeResult:
    run_id: str
    event_id: str | None
    duplicate: bool


async def generic_verifier(raw_body: bytes, headers: Mapping[str, str], endpoint: dict[str, Any]) -> VerifiedEvent:
    from crossdock.engine.core import VerifiedEvent

    secret = endpoint.get("secret")
    if secret:
        given = headers.get("x-crossdock-signature", "")
        expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given, expected):
            raise CrossdockError(
                "The webhook signature is missing or wrong: sign the raw body with HMAC-SHA256 and send "
                "`X-Crossdock-Signature: sha256=<hex>`.",
                code=ErrorCode.INVALID_SIGNATURE,
            )
    try:
        payload = orjson.loads(raw_body) if raw_body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise CrossdockError(f"The webhook body is not valid JSON: {exc}.", code=ErrorCode.MALFORMED_JSON) from exc
    key = headers.get("idempotency-key") or headers.get("x-event-id") or hashlib.sha256(raw_body).hexdigest()
    kept = {k: headers[k] for k in _KEEP_HEADERS if k in headers}
    return VerifiedEvent(dedup_key=key, payload=payload, headers=kept)


@dataclass
class _Item:
    endpoint: Endpoint
    event: VerifiedEvent
    future: asyncio.Future[IntakeResult]


class IntakeBatcher(GroupCommitter[_Item]):
    """Group commit of incoming events: one write per batch, each caller awaits its commit.

    On PostgreSQL up to `concurrency` batches are written at once, so a delivery that arrives while a
    slow commit is in flight does not wait for it to end before its own write starts (the ack tail);
    SQLite has one writer anyway. A duplicate racing its original in another batch waits on the
    original's row and is answered as a duplicate.
    """

    def __init__(
        self, db: Database, *, max_batch: int = 500, concurrency: int = 2, metrics: Metrics | None = None
    ) -> None:
        super().__init__(db, kind="intake", max_batch=max_batch, concurrency=concurrency, metrics=metrics)
        ins = pg_insert(RUNS) if db.dialect == "postgresql" else sqlite_insert(RUNS)
        self._insert_stmt = ins.on_conflict_do_nothing(index_elements=["dedup_key"]).returning(RUNS.c.dedup_key)
        # PostgreSQL: the batch as one typed array per column (`engine.bulk`), by the row's keys, run through
        # asyncpg directly (`core.rawpg`: a third of the intake's CPU under a trickle was SQLAlchemy's).
        self._array_inserts: dict[tuple[str, ...], RawStatement] = {}
        self.commits = 0

    async def submit(self, endpoint: Endpoint, event: VerifiedEvent) -> IntakeResult:
        item = _Item(endpoint, event, asyncio.get_running_loop().create_future())
        self._put(item)
        return await item.future

    async def _write(self, batch: list[_Item]) -> bool:
        try:
            results = await self._store(batch)
        except Exception as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return False
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)
        return True

    async def _store(self, batch: list[_Item]) -> list[IntakeResult]:
        from crossdock.engine.service import new_run_row

        first: dict[str, dict[str, Any]] = {}
        keys = []
        for item in batch:
            dedup = f"hook:{item.endpoint.id}:{item.event.dedup_key}"
            keys.append(dedup)
            if dedup in first:
                continue
            ep = item.endpoint
            trigger = {
                "kind": "webhook",
                "endpoint_id": ep.id,
                "event_id": new_id("evt"),
                "headers": item.event.headers,
            }
            first[dedup] = new_run_row(
                ep.flow_id, ep.version_id, ep.partner_id, ep.merchant_id, item.event.payload, trigger, dedup
            )
        if self.db.dialect == "postgresql":
            # One statement, so no BEGIN/COMMIT round trips: a single INSERT is atomic on its own.
            for attempt in range(3):
                try:
                    async with self._autocommit() as conn:
                        new_keys, existing = await self._insert(conn, first)
                    break
                except DBAPIError as exc:
                    # Keys are inserted in sorted order, so two batches cannot wait on each other's
                    # duplicates; retrying anything else that deadlocks is safe (ON CONFLICT DO NOTHING).
                    if attempt == 2 or "deadlock" not in str(exc).lower():
                        raise
        else:
            async with self.db.engine.begin() as conn:
                new_keys, existing = await self._insert(conn, first)
        self.commits += 1
        out = []
        seen: set[str] = set()
        for key in keys:
            if key in new_keys:
                dup = key in seen
                seen.add(key)
                run = first[key]
                out.append(IntakeResult(run["id"], run["trigger"]["event_id"], dup))
            else:
                old_run, old_event = existing[key]
                out.append(IntakeResult(old_run, old_event, True))
        return out

    def _array_insert(self, keys: tuple[str, ...]) -> RawStatement:
        stmt = self._array_inserts.get(keys)
        if stmt is None:
            sql = insert_from_arrays(RUNS, keys, "runs") + " ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key"
            stmt = self._array_inserts[keys] = RawStatement(text(sql), self.db.engine.dialect)
        return stmt

    async def _insert(
        self, conn: AsyncConnection, rows: dict[str, dict[str, Any]]
    ) -> tuple[set[str], dict[str, tuple[str, str | None]]]:
        """Insert the runs; the dedup keys created, and the (run, event) of keys that already existed."""
        # Sorted by dedup key: concurrent batches take the unique index's entries in one order.
        # PostgreSQL: one statement over the batch as arrays, one per column (`engine.bulk`). SQLite:
        # executemany (SQLAlchemy's "insertmanyvalues"), one cached statement whatever the batch size.
        ordered = [rows[k] for k in sorted(rows)]
        if self.db.dialect == "postgresql":
            keys = tuple(ordered[0])
            created = await self._array_insert(keys).fetch(conn, array_params(RUNS, keys, "runs", ordered))
            new_keys = {r[0] for r in created}
        else:
            new_keys = set((await conn.execute(self._insert_stmt, ordered)).scalars())
        old_keys = [k for k in rows if k not in new_keys]
        existing: dict[str, tuple[str, str | None]] = {}
        if old_keys:
            found = await conn.execute(
                select(RUNS.c.dedup_key, RUNS.c.id, RUNS.c.trigger).where(RUNS.c.dedup_key.in_(old_keys))
            )
            existing = {r[0]: (r[1], (r[2] or {}).get("event_id")) for r in found}
        return new_keys, existing


class EndpointCache:
    """Webhook endpoints by id, and the endpoints of a (verifier, connection), cached for a moment
    (publishing re-points them); concurrent misses share one query (`TTLCache`)."""

    def __init__(self, db: Database, ttl: float = 5.0) -> None:
        self.db = db
        self.by_id: TTLCache[str, Endpoint | None] = TTLCache(ttl)
        # (verifier, connection id) -> endpoints, for `find_endpoints`.
        self.found: TTLCache[tuple[str, str | None], list[Endpoint]] = TTLCache(ENDPOINTS_TTL_S)

    async def get(self, endpoint_id: str) -> Endpoint:
        endpoint = await self.by_id.get(endpoint_id, lambda: self._load(endpoint_id))
        if endpoint is None:
            raise NotFound("webhook endpoint", endpoint_id)
        return endpoint

    async def _load(self, endpoint_id: str) -> Endpoint | None:
        async with self.db.reads.connect() as conn:
            row = (
                await conn.execute(
                    select(Trigger).where(
                        Trigger.id == endpoint_id, Trigger.kind == "webhook", Trigger.enabled.is_(True)
                    )
                )
            ).first()
        if row is None:
            return None
        return Endpoint(row.id, row.flow_id, row.version_id, row.partner_id, row.merchant_id, row.config or {})


async def store_event(engine: Engine, endpoint: Endpoint, event: VerifiedEvent) -> IntakeResult:
    """Durably store an already-verified event and its run (group commit). Reusable by connector routes."""
    return await engine.intake.submit(endpoint, event)


async def receive_webhook(
    engine: Engine, endpoint_id: str, raw_body: bytes, headers: Mapping[str, str]
) -> IntakeResult:
    """Verify a delivery with its endpoint's verifier, then store it; raises 401/404 errors."""
    endpoint = await engine.endpoints.get(endpoint_id)
    kind = str(endpoint.config.get("verifier") or "generic")
    verifier = engine.verifiers.get(kind)
    if verifier is None:
        raise CrossdockError(f"No webhook verifier {kind!r} is installed.", code=ErrorCode.CONFIGURATION)
    lowered = {k.lower(): v for k, v in headers.items()}
    verified = verifier(raw_body, lowered, endpoint.config)
    if inspect.isawaitable(verified):
        verified = await verified
    return await store_event(engine, endpoint, verified)


async def find_endpoints(engine: Engine, *, verifier: str, connection_id: str | None = None) -> list[Endpoint]:
    """Enabled webhook endpoints using `verifier` (and bound to `connection_id`), for connector routes.

    Cached for `ENDPOINTS_TTL_S`: a flow published or disabled within that window still receives
    (or misses) events for that long."""
    return await engine.endpoints.found.get(
        (verifier, connection_id), lambda: _find_endpoints(engine, verifier=verifier, connection_id=connection_id)
    )


async def _find_endpoints(engine: Engine, *, verifier: str, connection_id: str | None) -> list[Endpoint]:
    async with engine.db.reads.connect() as conn:
        rows = (await conn.execute(select(Trigger).where(Trigger.kind == "webhook", Trigger.enabled.is_(True)))).all()
    out = []
    for row in rows:
        config = row.config or {}
        if config.get("verifier") != verifier:
            continue
        if connection_id is not None and config.get("connection_id") != connection_id:
            continue
        out.append(Endpoint(row.id, row.flow_id, row.version_id, row.partner_id, row.merchant_id, config))
    return out
