"""Request handling of the NetSuite simulator's REST API: records, eid upsert, transforms, collections, SuiteQL.

Creates, upserts and transforms answer 204 with a `Location` header, as NetSuite does. A request
carrying `X-NetSuite-Idempotency-Key` that repeats an earlier key answers 400 `IDEMPOTENCY_ERROR`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from crossdock.connectors.sandbox.netsuite_query import QueryError, parse_q, parse_suiteql, sort_rows
from crossdock.connectors.sandbox.netsuite_state import (
    KNOWN_FIELDS,
    RECORD_TYPES,
    TRANSACTIONS,
    Account,
    NSError,
    NSSettings,
    RecordStore,
)

IDEMPOTENCY_HEADER = "x-netsuite-idempotency-key"
SUITEQL_TABLES: dict[str, set[str]] = {
    "transaction": {"id", "tranid", "externalid", "entity", "trandate", "type", "status", "memo", "otherrefnum"}
    | {"foreigntotal", "createdfrom", "createddate", "lastmodifieddate"},
    "customer": {"id", "entityid", "externalid", "companyname", "email", "phone", "creditlimit", "balance"}
    | {"isinactive", "datecreated", "lastmodifieddate"},
    "item": {"id", "itemid", "externalid", "displayname", "itemtype", "baseprice", "isinactive", "lastmodifieddate"},
    # Per item and location quantities (SuiteQL's `inventoryItemLocations`), served from the
    # inventoryItem records' `locations` sublist; `location` is the location's internal id.
    "inventoryitemlocations": {"item", "location", "quantityavailable", "quantityonhand"},
}


async def handle_rest(
    store: RecordStore, settings: NSSettings, account: Account, request: Request, path: str
) -> Response:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None or request.method == "GET":
        return await _dispatch(store, settings, account, request, path)
    if key in account.idempotency:
        raise NSError(
            400,
            "IDEMPOTENCY_ERROR",
            f"A request with the idempotency key {key} has already been received. Use a new key for a new operation.",
            **{"o:errorHeader": "X-NetSuite-Idempotency-Key"},
        )
    account.idempotency[key] = "pending"
    try:
        response = await _dispatch(store, settings, account, request, path)
    except BaseException:
        del account.idempotency[key]  # a failed request may be retried with the same key
        raise
    account.idempotency[key] = "done"
    return response


async def _dispatch(
    store: RecordStore, settings: NSSettings, account: Account, request: Request, path: str
) -> Response:
    parts = path.strip("/").split("/")
    method = request.method
    if parts[:3] == ["query", "v1", "suiteql"] and len(parts) == 3:
        if method != "POST":
            raise NSError(405, "INVALID_REQUEST", "Only POST is supported for SuiteQL.")
        return _suiteql(store, settings, account, request, await _body(settings, request))
    if parts[:2] != ["record", "v1"] or len(parts) < 3 or parts[2] not in RECORD_TYPES:
        raise NSError(
            404, "NONEXISTENT_ID", f"Record type or resource '{'/'.join(parts[2:3]) or path}' does not exist."
        )
    record_type = parts[2]
    base = _base(request)
    if len(parts) == 3:
        if method == "GET":
            return _collection(store, settings, account, request, record_type)
        if method != "POST":
            raise NSError(405, "INVALID_REQUEST", f"{method} is not supported on a record collection.")
        record = store.create(account, record_type, _object(await _body(settings, request)))
        return _created(f"{base}/record/v1/{record_type}/{record['id']}")
    ident = parts[3]
    if len(parts) == 5 and parts[4] in ("item", "package") and method == "GET":
        record = store.get(account, record_type, ident)
        return _json(200, {"links": [], **record.get(parts[4], {"items": []})})
    if len(parts) == 6 and parts[4] == "!transform":
        if method != "POST":
            raise NSError(405, "INVALID_REQUEST", "Transforms are invoked with POST.")
        source = store.get(account, record_type, ident)
        changes = _object(await _body(settings, request))
        created = store.transform(account, record_type, source, parts[5], changes)
        return _created(f"{base}/record/v1/{parts[5]}/{created['id']}")
    if len(parts) != 4:
        raise NSError(404, "NONEXISTENT_ID", f"Resource '{path}' does not exist.")
    if method == "GET":
        record = store.get(account, record_type, ident)
        expand = request.query_params.get("expandSubResources", "false").lower() == "true"
        return _json(
            200, _public(record, f"{base}/record/v1/{record_type}/{record['id']}", expand), "singular-resource"
        )
    if method == "DELETE":
        store.delete(account, record_type, store.get(account, record_type, ident))
        return Response(status_code=204)
    body = _object(await _body(settings, request))
    if method == "PATCH":
        store.update(account, record_type, store.get(account, record_type, ident), body)
        return Response(status_code=204)
    if method == "PUT":
        if not ident.startswith("eid:"):
            raise NSError(405, "INVALID_REQUEST", "PUT (upsert) is only supported with an external id: eid:{value}.")
        existing = store.find(account, record_type, ident)
        if existing is None:
            record = store.create(account, record_type, {**body, "externalId": ident[4:]})
        else:
            store.update(account, record_type, existing, body)
            record = existing
        return _created(f"{base}/record/v1/{record_type}/{record['id']}")
    raise NSError(405, "INVALID_REQUEST", f"{method} is not supported here.")


def _collection(
    store: RecordStore, settings: NSSettings, account: Account, request: Request, record_type: str
) -> Response:
    rows = list(account.table(record_type).values())
    q = request.query_params.get("q")
    if q:
        fields = {"id", "tranId", "createdDate", "lastModifiedDate", "status", "total"}
        fields |= KNOWN_FIELDS["transaction" if record_type in TRANSACTIONS else record_type]
        try:
            predicate = parse_q(q, fields)
        except QueryError as exc:
            raise NSError(
                400, "INVALID_PARAMETER", f"Invalid search query: {exc}", **{"o:errorQueryParam": "q"}
            ) from None
        rows = [r for r in rows if predicate(r)]
    rows.sort(key=lambda r: int(r["id"]) if r["id"].isdigit() else 0)
    base = _base(request)
    items = [
        {"links": [{"rel": "self", "href": f"{base}/record/v1/{record_type}/{r['id']}"}], "id": r["id"]} for r in rows
    ]
    return _json(200, _page(request, settings, items))


def _suiteql(store: RecordStore, settings: NSSettings, account: Account, request: Request, body: Any) -> Response:
    if "transient" not in request.headers.get("prefer", "").lower():
        # The exact code NetSuite uses for a missing `Prefer: transient` is not in our reference [U].
        raise NSError(
            400,
            "INVALID_PARAMETER",
            "SuiteQL requests require the header 'Prefer: transient'.",
            **{"o:errorHeader": "Prefer"},
        )
    if not isinstance(body, dict) or not isinstance(body.get("q"), str):
        raise NSError(400, "INVALID_CONTENT", "The request body must be a JSON object with a string 'q'.")
    try:
        query = parse_suiteql(body["q"], SUITEQL_TABLES)
    except QueryError as exc:
        raise NSError(
            400, "INVALID_PARAMETER", f"Invalid search query. Detailed unprocessed description follows. {exc}"
        ) from None
    rows = _suiteql_rows(account, query.table)
    if query.where is not None:
        rows = [r for r in rows if query.where(r)]
    rows = sort_rows(rows, query.order) if query.order else sorted(rows, key=_default_order)
    items: list[dict[str, Any]] = [
        {
            "links": [],
            **{k: (None if v is None else str(v)) for k, v in r.items() if query.columns is None or k in query.columns},
        }
        for r in rows
    ]
    return _json(200, _page(request, settings, items))


def _suiteql_rows(account: Account, table: str) -> list[dict[str, Any]]:
    if table == "customer":
        return [
            {
                "id": c["id"], "entityid": c.get("entityId"), "externalid": c.get("externalId"),
                "companyname": c.get("companyName"), "email": c.get("email"), "phone": c.get("phone"),
                "creditlimit": c.get("creditLimit"), "balance": c.get("balance"),
                "isinactive": "T" if c.get("isInactive") else "F", "datecreated": c.get("createdDate"),
                "lastmodifieddate": c.get("lastModifiedDate"),
            }
            for c in account.table("customer").values()
        ]  # fmt: skip
    if table == "item":
        return [
            {
                "id": i["id"], "itemid": i.get("itemId"), "externalid": i.get("externalId"),
                "displayname": i.get("displayName"), "itemtype": "InvtPart", "baseprice": i.get("basePrice"),
                "isinactive": "T" if i.get("isInactive") else "F", "lastmodifieddate": i.get("lastModifiedDate"),
            }
            for i in account.table("inventoryItem").values()
        ]  # fmt: skip
    if table == "inventoryitemlocations":
        return [
            {
                "item": i["id"], "location": _ref_id(line.get("location")),
                "quantityavailable": line.get("quantityAvailable"),
                "quantityonhand": line.get("quantityOnHand"),
            }
            for i in account.table("inventoryItem").values()
            for line in _sublist(i.get("locations"))
        ]  # fmt: skip
    rows = []
    for record_type, (code, _) in TRANSACTIONS.items():
        for t in account.table(record_type).values():
            rows.append(
                {
                    "id": t["id"], "tranid": t.get("tranId"), "externalid": t.get("externalId"),
                    "entity": (t.get("entity") or {}).get("id"), "trandate": t.get("tranDate"), "type": code,
                    "status": (t.get("status") or {}).get("id"), "memo": t.get("memo"),
                    "otherrefnum": t.get("otherRefNum"), "foreigntotal": t.get("total"),
                    "createdfrom": (t.get("createdFrom") or {}).get("id"), "createddate": t.get("createdDate"),
                    "lastmodifieddate": t.get("lastModifiedDate"),
                }
            )  # fmt: skip
    return rows


def _default_order(row: dict[str, Any]) -> tuple[int, ...]:
    if "id" in row:
        return (int(row["id"]),)
    return tuple(int(str(row.get(k) or 0)) if str(row.get(k) or 0).isdigit() else 0 for k in ("item", "location"))


def _ref_id(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


def _sublist(value: Any) -> list[dict[str, Any]]:
    lines = value.get("items") if isinstance(value, dict) else None
    return [line for line in lines or [] if isinstance(line, dict)]


def _page(request: Request, settings: NSSettings, items: list[dict[str, Any]]) -> dict[str, Any]:
    limit = _int_param(request, "limit", settings.default_page_limit, 1, 1000)
    offset = _int_param(request, "offset", 0, 0, None)
    total = len(items)
    page = items[offset : offset + limit]
    url = str(request.url).split("?")[0]
    keep = [(k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "offset")]

    def href(at: int) -> str:
        return f"{url}?{urlencode([*keep, ('limit', str(limit)), ('offset', str(at))])}"

    last = max(0, ((total - 1) // limit) * limit) if total else 0
    links = [{"rel": "first", "href": href(0)}]
    if offset > 0:
        links.append({"rel": "previous", "href": href(max(0, offset - limit))})
    if offset + limit < total:
        links.append({"rel": "next", "href": href(offset + limit)})
    links += [{"rel": "last", "href": href(last)}, {"rel": "self", "href": href(offset)}]
    return {
        "links": links,
        "count": len(page),
        "hasMore": offset + limit < total,
        "items": page,
        "offset": offset,
        "totalResults": total,
    }


def _int_param(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise NSError(
            400,
            "INVALID_PARAMETER",
            f"The value of '{name}' must be an integer {bound}.",
            **{"o:errorQueryParam": name},
        )
    return int(raw)


def _public(record: dict[str, Any], self_href: str, expand: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"links": [{"rel": "self", "href": self_href}]}
    out.update({k: v for k, v in record.items() if not k.startswith("_")})
    for sublist in ("item", "package"):  # sublists are links unless expandSubResources=true
        if sublist in out and not expand:
            out[sublist] = {"links": [{"rel": "self", "href": f"{self_href}/{sublist}"}]}
    return out


def _base(request: Request) -> str:
    return str(request.url).split("?")[0].split("/services/rest/")[0] + "/services/rest"


async def _body(settings: NSSettings, request: Request) -> Any:
    raw = await request.body()
    if len(raw) > settings.max_request_bytes:
        raise NSError(
            413, "REQUEST_TOO_LARGE", f"The request exceeds the maximum size of {settings.max_request_bytes} bytes."
        )
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise NSError(400, "INVALID_CONTENT", "The request body is not valid JSON.") from None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise NSError(400, "INVALID_CONTENT", "The request body must be a JSON object.")
    return body


def _created(location: str) -> Response:
    return Response(status_code=204, headers={"Location": location})


def _json(status: int, body: Any, kind: str = "collection") -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type=f"application/vnd.oracle.resource+json; type={kind}"
    )
