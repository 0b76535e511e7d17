"""Dynamics 365 Business Central API v2.0 simulator: OAuth2 client credentials, OData data API, limits.

`create_businesscentral_app(state)` returns a FastAPI app that may be mounted under any prefix (the
combined sandbox mounts it at `/businesscentral`); every URL it returns is built from the request URL.

    POST /{tenant}/oauth2/v2.0/token                                   client-credentials grant
    /v2.0/{tenant}/{environment}/api/v2.0/companies(...)/{entity}...   data API (see `_resolve`)
    /_control/...                                                      seeding, settings, counters, faults
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Request, Response

from crossdock.connectors.sandbox.businesscentral_access import AccessControl, TokenError
from crossdock.connectors.sandbox.businesscentral_actions import ACTIONS
from crossdock.connectors.sandbox.businesscentral_entities import COMPANY_FIELDS, ENTITIES, LINE_FIELDS, LINE_SETS
from crossdock.connectors.sandbox.businesscentral_query import ODataQuery, page_records
from crossdock.connectors.sandbox.businesscentral_state import BCError, BCSettings, Company, CompanyStore
from crossdock.connectors.sandbox.faults import FaultMiddleware, FaultState, add_fault_routes

ODATA_JSON = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
CORRUPTIONS = frozenset({"malformed_json", "missing_fields", "huge", "html_error"})


class BusinessCentralSimulator:
    """One simulated BC environment: data, credentials, limits, faults. Seed it before serving."""

    def __init__(self, settings: BCSettings | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or BCSettings()
        self._clock = clock
        self.clock_offset = 0.0
        self.store = CompanyStore(self.settings, self.now)
        self.access = AccessControl(self.settings, self.now)
        self.faults = FaultState()
        self.corruptions: deque[tuple[str, str | None]] = deque()

    def now(self) -> float:
        return self._clock() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the simulator's clock forward (token expiry, rate windows, timestamps)."""
        self.clock_offset += seconds

    def add_client(self, client_id: str, client_secret: str) -> None:
        """Register an app registration (service principal) allowed to get tokens."""
        self.access.add_client(client_id, client_secret)

    def add_company(self, name: str, company_id: str | None = None) -> str:
        return self.store.add_company(name, company_id).id

    def seed_items(self, company_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Bulk-insert items; `inventory` may be set here (it is read-only through the API)."""
        return self.store.seed(self.store.company(company_id), "items", items)

    def seed_customers(self, company_id: str, customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.store.seed(self.store.company(company_id), "customers", customers)

    def seed_records(self, company_id: str, entity: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Bulk-insert any entity as-is, without business rules (for paging and demo data)."""
        return self.store.seed(self.store.company(company_id), entity, rows)

    def set_inventory(self, company_id: str, item_number: str, quantity: float) -> None:
        self.store.set_inventory(self.store.company(company_id), item_number, quantity)

    def configure(self, **changes: Any) -> BCSettings:
        """Change settings at runtime (validated); limiter state restarts when limits change."""
        validated = BCSettings.model_validate({**self.settings.model_dump(), **changes})
        for name in changes:
            setattr(self.settings, name, getattr(validated, name))
        self.access.limits.clear()
        return self.settings

    def corrupt_next(self, mode: str, count: int = 1, *, method: str | None = None) -> None:
        """Answer the next `count` data API requests (of `method`, if given) with a broken response.

        The request is still processed, so `html_error` on a POST models a response lost after the
        write landed. Modes: see `CORRUPTIONS`.
        """
        if mode not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {mode!r}; choose from {sorted(CORRUPTIONS)}")
        self.corruptions.extend([(mode, method.upper() if method else None)] * count)

    def records(self, company_id: str, entity: str) -> list[dict[str, Any]]:
        """Current rows of an entity set (for assertions)."""
        return list(self.store.company(company_id).table(entity).values())

    def counters(self) -> dict[str, Any]:
        return {**self.access.counters.as_dict(), "etag_conflicts": self.store.etag_conflicts}

    def reset(self, *, keep_clients: bool = True) -> None:
        """Drop all data, tokens, counters and faults (registered clients stay unless told)."""
        clients = dict(self.access.clients) if keep_clients else {}
        self.store = CompanyStore(self.settings, self.now)
        self.access = AccessControl(self.settings, self.now)
        self.access.clients.update(clients)
        self.faults.clear()
        self.faults.injected.clear()
        self.corruptions.clear()
        self.clock_offset = 0.0


def create_businesscentral_app(state: BusinessCentralSimulator | None = None) -> FastAPI:
    """The BC simulator as an ASGI app (fault injection included); `app.state.simulator` is the state."""
    sim = state or BusinessCentralSimulator()
    app = FastAPI(title="Business Central API v2.0 simulator", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.simulator = sim
    app.add_middleware(FaultMiddleware, state=sim.faults)

    @app.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        try:
            return _json(200, sim.access.issue_token(form), media_type="application/json")
        except TokenError as exc:
            return _json(exc.status, exc.body, media_type="application/json")

    @app.api_route("/v2.0/{tenant}/{environment}/api/v2.0/{path:path}", methods=["GET", "POST", "PATCH", "DELETE"])
    async def data_api(tenant: str, environment: str, path: str, request: Request) -> Response:
        try:
            principal = sim.access.authenticate(request.headers.get("authorization"))
            await sim.access.enter(principal)
        except BCError as exc:
            return _error(exc)
        try:
            if sim.settings.latency_ms:
                await asyncio.sleep(sim.settings.latency_ms / 1000)
            response = await _handle(sim, request, path)
        except BCError as exc:
            response = _error(exc)
        finally:
            sim.access.leave(principal)
        if sim.corruptions and sim.corruptions[0][1] in (None, request.method):
            return _corrupt(sim.corruptions.popleft()[0])
        return response

    _control_routes(app, sim)
    return app


async def _handle(sim: BusinessCentralSimulator, request: Request, path: str) -> Response:
    store = sim.store
    segments = _segments(path)
    method = request.method
    body = await _body(sim, request) if method in ("POST", "PATCH") else None
    if segments[0][0] != "companies":
        raise _no_segment(segments[0][0])
    if len(segments) == 1:
        if segments[0][1] is None:
            _allow(method, "GET", "companies")
            rows = [c.public() for c in store.companies.values()]
            query = ODataQuery.from_request(request, dict.fromkeys(COMPANY_FIELDS), None)
            return _collection(request, "companies", rows, ("name", "id"), lambda r: r, query)
        _allow(method, "GET", "companies")
        return _json(
            200, {"@odata.context": _context(request, "companies/$entity"), **store.company(segments[0][1]).public()}
        )
    company = store.company(segments[0][1] or "")
    entity, key = segments[1]
    ctx = f"companies({company.id})/{entity}"
    if entity in LINE_SETS and key is None and len(segments) == 2:  # flat line collection (read-only)
        _allow(method, "GET", entity)
        parent = LINE_SETS[entity]
        lines = [ln for doc in company.table(parent) for ln in store.doc_lines(company, doc)]
        query = ODataQuery.from_request(request, LINE_FIELDS, None)
        return _collection(
            request, ctx, lines, ("documentId", "sequence", "id"), lambda r: _public_line(store, company, r), query
        )
    spec = ENTITIES.get(entity)
    if spec is None:
        raise _no_segment(entity)
    if len(segments) == 2 and key is None:
        if method == "GET":
            query = ODataQuery.from_request(request, spec.fields, spec.lines)
            lines_name = spec.lines if query.expand else None
            return _collection(
                request,
                ctx,
                list(company.table(entity).values()),
                ("number", "id"),
                lambda r: _public(store, company, r, query.select, lines_name),
                query,
            )
        _allow(method, "POST", entity, spec.methods)
        record = store.create(company, entity, _object(body))
        location = f"{str(request.url).split('?')[0]}({record['id']})"
        payload = _public(store, company, record, None, spec.lines if _expands(request, spec.lines) else None)
        return _json(
            201, {"@odata.context": _context(request, f"{ctx}/$entity"), **payload}, headers={"Location": location}
        )
    record = store.record(company, entity, key or "")
    if len(segments) == 2:
        if method == "GET":
            query = ODataQuery.from_request(request, spec.fields, spec.lines)
            payload = _public(store, company, record, query.select, spec.lines if query.expand else None)
            return _json(200, {"@odata.context": _context(request, f"{ctx}/$entity"), **payload})
        _allow(method, "PATCH" if method == "PATCH" else "DELETE", entity, spec.methods)
        store.check_if_match(company, record["id"], request.headers.get("if-match"))
        if method == "DELETE":
            store.delete(company, entity, record["id"])
            return Response(status_code=204)
        record = store.update(company, entity, record["id"], _object(body))
        payload = _public(store, company, record, None, None)
        return _json(200, {"@odata.context": _context(request, f"{ctx}/$entity"), **payload})
    sub, sub_key = segments[2]
    if len(segments) == 3 and sub.startswith("Microsoft.NAV."):
        if sub not in spec.actions:
            raise BCError(400, "BadRequest_MethodNotImplemented", "Entity does not support bound actions")
        _allow(method, "POST", sub)
        ACTIONS[sub](store, company, record["id"])
        return Response(status_code=204)
    if sub != spec.lines or len(segments) > 3:
        raise _no_segment(sub)
    line_ctx = f"{ctx}({record['id']})/{sub}"
    if sub_key is None:
        if method == "GET":
            query = ODataQuery.from_request(request, LINE_FIELDS, None)
            return _collection(
                request,
                line_ctx,
                store.doc_lines(company, record["id"]),
                ("sequence", "id"),
                lambda r: _public_line(store, company, r, query.select),
                query,
            )
        _allow(method, "POST", sub, spec.methods)
        line = store.create_line(company, entity, record["id"], _object(body))
        return _json(
            201, {"@odata.context": _context(request, f"{line_ctx}/$entity"), **_public_line(store, company, line)}
        )
    line = store.line(company, record["id"], sub_key)
    if method == "GET":
        return _json(
            200, {"@odata.context": _context(request, f"{line_ctx}/$entity"), **_public_line(store, company, line)}
        )
    _allow(method, method if method in ("PATCH", "DELETE") else "PATCH", sub, spec.methods)
    store.check_if_match(company, line["id"], request.headers.get("if-match"))
    if method == "DELETE":
        store.delete_line(company, entity, record["id"], line["id"])
        return Response(status_code=204)
    line = store.update_line(company, entity, record["id"], line["id"], _object(body))
    return _json(
        200, {"@odata.context": _context(request, f"{line_ctx}/$entity"), **_public_line(store, company, line)}
    )


def _collection(
    request: Request,
    ctx: str,
    rows: list[dict[str, Any]],
    order: tuple[str, ...],
    render: Callable[[dict[str, Any]], dict[str, Any]],
    query: ODataQuery,
) -> Response:
    sim: BusinessCentralSimulator = request.app.state.simulator
    page, next_query, page_size = page_records(rows, order, query, sim.settings.max_page_size)
    body: dict[str, Any] = {"@odata.context": _context(request, ctx), "value": [render(r) for r in page]}
    if next_query is not None:
        url = request.url.remove_query_params(["$skip", "$skiptoken", "$top"]).include_query_params(**next_query)
        body["@odata.nextLink"] = str(url)
    headers = {"Preference-Applied": f"odata.maxpagesize={page_size}"} if query.prefer_page_size else None
    return _json(200, body, headers=headers)


def _public(
    store: CompanyStore, company: Company, record: dict[str, Any], select: list[str] | None, lines: str | None
) -> dict[str, Any]:
    fields = {k: v for k, v in record.items() if select is None or k in select or k == "id"}
    out = {"@odata.etag": store.etag(company, record["id"]), **fields}
    if lines:
        out[lines] = [_public_line(store, company, ln) for ln in store.doc_lines(company, record["id"])]
    return out


def _public_line(store: CompanyStore, company: Company, line: dict[str, Any], select: list[str] | None = None) -> Any:
    fields = {k: v for k, v in line.items() if select is None or k in select or k == "id"}
    return {"@odata.etag": store.etag(company, line["id"]), **fields}


def _expands(request: Request, lines: str | None) -> bool:
    return lines is not None and request.query_params.get("$expand", "").strip() == lines


def _segments(path: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for raw in path.strip("/").split("/"):
        name, sep, rest = raw.partition("(")
        if sep and not rest.endswith(")"):
            raise _no_segment(raw)
        key = rest[:-1].strip("'") if sep else None
        if key is not None and key.startswith("id="):
            key = key[3:].strip("'")
        out.append((name, key))
    if not out or not out[0][0]:
        raise _no_segment(path)
    return out


def _no_segment(segment: str) -> BCError:
    return BCError(404, "BadRequest_ResourceNotFound", f"Resource not found for the segment '{segment}'.")


def _allow(method: str, allowed: str, what: str, methods: frozenset[str] | None = None) -> None:
    if method != allowed or (methods is not None and allowed not in methods):
        raise BCError(
            405,
            "BadRequest_MethodNotAllowed",
            f"'{method}' requests for '{what}' of EdmType 'Entity' are not allowed within Microsoft Dynamics 365 "
            "Business Central OData web services.",
        )


async def _body(sim: BusinessCentralSimulator, request: Request) -> Any:
    raw = await request.body()
    if len(raw) > sim.settings.max_request_bytes:
        raise BCError(413, "RequestEntityTooLarge", f"The request body exceeds {sim.settings.max_request_bytes} bytes.")
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BCError(400, "BadRequest", "Invalid Request Body") from exc


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BCError(400, "BadRequest", "Invalid Request Body")
    return dict(body)


def _context(request: Request, suffix: str) -> str:
    base = str(request.url).split("?")[0].split("/api/v2.0/")[0]
    return f"{base}/api/v2.0/$metadata#{suffix}"


def _json(status: int, body: Any, *, headers: dict[str, str] | None = None, media_type: str = ODATA_JSON) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=media_type, headers=headers)


def _error(exc: BCError) -> Response:
    return _json(exc.status, exc.body(), headers=exc.headers, media_type="application/json; charset=utf-8")


def _corrupt(mode: str) -> Response:
    if mode == "malformed_json":
        return Response(b'{"@odata.context":"x","value":[{"id":', media_type=ODATA_JSON)
    if mode == "missing_fields":
        return _json(200, {"unexpected": True})
    if mode == "html_error":
        return Response(b"<html><body>502 Bad Gateway</body></html>", status_code=502, media_type="text/html")
    padding = base64.b64encode(b"x" * 3_000_000).decode()  # ~4 MB of JSON
    return _json(200, {"value": [{"id": "huge", "blob": padding}]})


def _control_routes(app: FastAPI, sim: BusinessCentralSimulator) -> None:
    @app.exception_handler(BCError)
    async def bc_error(_: Request, exc: BCError) -> Response:
        return _error(exc)

    @app.post("/_control/clients")
    async def add_client(body: dict[str, str]) -> dict[str, str]:
        sim.add_client(body["client_id"], body["client_secret"])
        return {"client_id": body["client_id"]}

    @app.post("/_control/companies")
    async def add_company(body: dict[str, str]) -> dict[str, Any]:
        return {"id": sim.add_company(body["name"], body.get("id"))}

    @app.post("/_control/companies/{company_id}/{entity}")
    async def seed(company_id: str, entity: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        if entity not in ENTITIES:
            raise _no_segment(entity)
        created = sim.seed_records(company_id, entity, rows)
        return {"created": len(created), "ids": [r["id"] for r in created]}

    @app.put("/_control/companies/{company_id}/inventory")
    async def inventory(company_id: str, body: dict[str, Any]) -> dict[str, Any]:
        sim.set_inventory(company_id, str(body["itemNumber"]), float(body["quantity"]))
        return {"itemNumber": body["itemNumber"], "inventory": float(body["quantity"])}

    @app.post("/_control/settings")
    async def settings(body: dict[str, Any]) -> dict[str, Any]:
        return sim.configure(**body).model_dump()

    @app.post("/_control/reset")
    async def reset() -> dict[str, bool]:
        sim.reset()
        return {"reset": True}

    add_fault_routes(app, sim.faults)

    @app.post("/_control/corrupt")
    async def corrupt(body: dict[str, Any]) -> dict[str, Any]:
        sim.corrupt_next(str(body["mode"]), int(body.get("count", 1)), method=body.get("method"))
        return {"queued": len(sim.corruptions)}

    @app.post("/_control/clock")
    async def clock(body: dict[str, float]) -> dict[str, float]:
        sim.advance_clock(float(body["advance_s"]))
        return {"offset_s": sim.clock_offset}

    @app.post("/_control/tokens/expire")
    async def expire() -> dict[str, int]:
        sim.access.expire_tokens()
        return {"expired": len(sim.access.tokens)}

    @app.get("/_control/counters")
    async def counters() -> dict[str, Any]:
        return sim.counters()
