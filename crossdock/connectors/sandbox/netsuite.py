"""NetSuite SuiteTalk REST simulator: OAuth 1.0a TBA, record API, transforms, SuiteQL, concurrency limit.

`create_netsuite_app(state)` returns a FastAPI app that may be mounted under any prefix (the
combined sandbox mounts it at `/netsuite`); `Location` headers and paging links are built from the
request URL. The signature is verified over the URL exactly as the client sent it (raw path).

    /services/rest/record/v1/{type}[/{id}|/eid:{externalId}][/!transform/{target}]
    POST /services/rest/query/v1/suiteql        (Prefer: transient)
    /_control/...                               seeding, settings, counters, faults
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

from crossdock.connectors.sandbox.faults import FaultMiddleware, FaultState, add_fault_routes
from crossdock.connectors.sandbox.netsuite_auth import authenticate
from crossdock.connectors.sandbox.netsuite_records import handle_rest
from crossdock.connectors.sandbox.netsuite_state import RECORD_TYPES, Account, NSError, NSSettings, RecordStore

CORRUPTIONS = frozenset({"malformed_json", "missing_fields", "huge", "html_error"})


class NetSuiteSimulator:
    """Simulated NetSuite accounts: credentials, records, limits, faults. Seed it before serving."""

    def __init__(self, settings: NSSettings | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or NSSettings()
        self._clock = clock
        self.clock_offset = 0.0
        self.accounts: dict[str, Account] = {}
        self.store = RecordStore(self.settings, self.now)
        self.faults = FaultState()
        self.corruptions: deque[tuple[str, str | None]] = deque()
        self.stats: dict[str, int] = {}

    def now(self) -> float:
        return self._clock() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        self.clock_offset += seconds

    def count(self, name: str, value: int = 1, *, peak: bool = False) -> None:
        self.stats[name] = max(self.stats.get(name, 0), value) if peak else self.stats.get(name, 0) + value

    def account(self, account_id: str) -> Account:
        realm = account_id.upper().replace("-", "_")
        if realm not in self.accounts:
            raise KeyError(f"no simulated NetSuite account {account_id!r}")
        return self.accounts[realm]

    def add_account(
        self,
        account_id: str,
        *,
        consumer_key: str,
        consumer_secret: str,
        token_id: str,
        token_secret: str,
        concurrency_limit: int | None = None,
    ) -> Account:
        """Create an account (or add an integration + token to it); returns it."""
        realm = account_id.upper().replace("-", "_")
        account = self.accounts.setdefault(realm, Account(realm))
        account.consumers[consumer_key] = consumer_secret
        account.tokens[token_id] = token_secret
        if concurrency_limit is not None:
            account.concurrency_limit = concurrency_limit
        return account

    def seed_customers(self, account_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Bulk-insert customers (`balance`, `creditLimit`, `creditHoldOverride` may be set)."""
        return self.store.seed(self.account(account_id), "customer", rows)

    def seed_items(self, account_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.store.seed(self.account(account_id), "inventoryItem", rows)

    def set_item_quantity(
        self,
        account_id: str,
        item: str,
        location_id: str,
        available: float,
        *,
        on_hand: float | None = None,
        location_name: str | None = None,
    ) -> dict[str, Any]:
        """Set an item's quantities at one location (its `locations` sublist line, added if missing).

        `item` is an internal id or `eid:{externalId}`; `on_hand` defaults to `available`.
        """
        record = self.store.get(self.account(account_id), "inventoryItem", item)
        lines = record.setdefault("locations", {"items": []}).setdefault("items", [])
        line = next((li for li in lines if (li.get("location") or {}).get("id") == str(location_id)), None)
        if line is None:
            line = {"location": {"id": str(location_id), "refName": location_name or str(location_id)}}
            lines.append(line)
        line.update(quantityAvailable=available, quantityOnHand=available if on_hand is None else on_hand)
        record["lastModifiedDate"] = self.store.stamp()
        return record

    def seed_records(self, account_id: str, record_type: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if record_type not in RECORD_TYPES:
            raise KeyError(record_type)
        return self.store.seed(self.account(account_id), record_type, rows)

    def records(self, account_id: str, record_type: str) -> list[dict[str, Any]]:
        return list(self.account(account_id).table(record_type).values())

    def configure(self, **changes: Any) -> NSSettings:
        validated = NSSettings.model_validate({**self.settings.model_dump(), **changes})
        for name in changes:
            setattr(self.settings, name, getattr(validated, name))
        return self.settings

    def corrupt_next(self, mode: str, count: int = 1, *, method: str | None = None) -> None:
        """Answer the next `count` REST requests (of `method`, if given) with a broken response, after processing."""
        if mode not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {mode!r}; choose from {sorted(CORRUPTIONS)}")
        self.corruptions.extend([(mode, method.upper() if method else None)] * count)

    def counters(self) -> dict[str, int]:
        return dict(self.stats)

    def reset(self, *, keep_accounts: bool = False) -> None:
        """Drop records, replay caches, counters and faults (and accounts unless told to keep them)."""
        if keep_accounts:
            kept = {
                realm: Account(realm, dict(a.consumers), dict(a.tokens), a.concurrency_limit)
                for realm, a in self.accounts.items()
            }
            self.accounts = kept
        else:
            self.accounts = {}
        self.stats = {}
        self.faults.clear()
        self.faults.injected.clear()
        self.corruptions.clear()
        self.clock_offset = 0.0


def create_netsuite_app(state: NetSuiteSimulator | None = None) -> FastAPI:
    """The NetSuite simulator as an ASGI app (fault injection included); `app.state.simulator` is the state."""
    sim = state or NetSuiteSimulator()
    app = FastAPI(title="NetSuite REST simulator", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.simulator = sim
    app.add_middleware(FaultMiddleware, state=sim.faults)

    @app.api_route("/services/rest/{path:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
    async def rest(path: str, request: Request) -> Response:
        sim.count("requests")
        try:
            account = authenticate(sim, request)
        except NSError as exc:
            sim.count("auth_failures")
            return error_response(exc)
        limit = account.concurrency_limit or sim.settings.concurrency_limit
        if account.in_flight >= limit:
            sim.count("throttled")
            # NetSuite answers REST requests over the account's concurrency limit with 429; the exact
            # o:errorCode is not documented in our reference [U].
            return error_response(
                NSError(429, "CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit exceeded. Request blocked.")
            )
        account.in_flight += 1
        sim.count("max_in_flight", account.in_flight, peak=True)
        try:
            if sim.settings.latency_ms:
                await asyncio.sleep(sim.settings.latency_ms / 1000)
            response = await handle_rest(sim.store, sim.settings, account, request, path)
        except NSError as exc:
            response = error_response(exc)
        finally:
            account.in_flight -= 1
        if sim.corruptions and sim.corruptions[0][1] in (None, request.method):
            return corrupt(sim.corruptions.popleft()[0])
        return response

    _control_routes(app, sim)
    return app


def error_response(exc: NSError) -> Response:
    return Response(
        orjson.dumps(exc.body()), status_code=exc.status, media_type="application/vnd.oracle.resource+json; type=error"
    )


def corrupt(mode: str) -> Response:
    if mode == "malformed_json":
        return Response(b'{"links":[],"items":[{"id":', media_type="application/json")
    if mode == "missing_fields":
        return Response(b'{"unexpected":true}', media_type="application/json")
    if mode == "html_error":
        return Response(b"<html><body>502 Bad Gateway</body></html>", status_code=502, media_type="text/html")
    return Response(orjson.dumps({"items": [{"id": "1", "blob": "x" * 4_000_000}]}), media_type="application/json")


def _control_routes(app: FastAPI, sim: NetSuiteSimulator) -> None:
    @app.exception_handler(KeyError)
    async def unknown(_: Request, exc: KeyError) -> Response:
        return Response(orjson.dumps({"error": f"unknown {exc}"}), status_code=404, media_type="application/json")

    @app.post("/_control/accounts")
    async def add_account(body: dict[str, Any]) -> dict[str, Any]:
        account = sim.add_account(
            str(body["account_id"]),
            consumer_key=body["consumer_key"],
            consumer_secret=body["consumer_secret"],
            token_id=body["token_id"],
            token_secret=body["token_secret"],
            concurrency_limit=body.get("concurrency_limit"),
        )
        return {"realm": account.realm}

    @app.post("/_control/accounts/{account_id}/{record_type}")
    async def seed(account_id: str, record_type: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        created = sim.seed_records(account_id, record_type, rows)
        return {"created": len(created), "ids": [r["id"] for r in created]}

    @app.post("/_control/settings")
    async def settings(body: dict[str, Any]) -> dict[str, Any]:
        return sim.configure(**body).model_dump()

    @app.post("/_control/reset")
    async def reset(keep_accounts: bool = True) -> dict[str, bool]:
        sim.reset(keep_accounts=keep_accounts)
        return {"reset": True}

    add_fault_routes(app, sim.faults)

    @app.post("/_control/corrupt")
    async def corrupt_route(body: dict[str, Any]) -> dict[str, int]:
        sim.corrupt_next(str(body["mode"]), int(body.get("count", 1)), method=body.get("method"))
        return {"queued": len(sim.corruptions)}

    @app.post("/_control/clock")
    async def clock(body: dict[str, float]) -> dict[str, float]:
        sim.advance_clock(float(body["advance_s"]))
        return {"offset_s": sim.clock_offset}

    @app.get("/_control/counters")
    async def counters() -> dict[str, int]:
        return sim.counters()
