"""HTTP plumbing shared by the Shopify simulator's routes: auth, call limit, bodies, pagination.

Every REST response carries `X-Shopify-Shop-Api-Call-Limit`; errors are rendered in Shopify's
`{"errors": ...}` shape. Pagination links are absolute and built from the request URL, so they
keep whatever prefix the simulator is mounted under.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import Request, Response

from crossdock.connectors.sandbox.shopify_state import ShopifyAPIError, ShopifySimulator, ShopStore

INVALID_TOKEN = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
DEFAULT_LIMIT = 50
MAX_LIMIT = 250


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=dict(headers or {}), media_type="application/json")


class RestCall:
    """One authenticated, admitted REST call: its shop and the headers every response carries."""

    def __init__(self, store: ShopStore, headers: dict[str, str]) -> None:
        self.store = store
        self.headers = headers

    def ok(self, body: Any, status: int = 200, extra: Mapping[str, str] | None = None) -> Response:
        return json_response(body, status, {**self.headers, **(extra or {})})


def authenticate(sim: ShopifySimulator, request: Request) -> ShopStore:
    store = sim.shop_for_token(request.headers.get("x-shopify-access-token"))
    if store is None:
        raise ShopifyAPIError(401, INVALID_TOKEN)
    return store


def admit(sim: ShopifySimulator, request: Request) -> RestCall:
    """Authenticate, then offer the call to the shop's leaky bucket (429 when full)."""
    store = authenticate(sim, request)
    decision = store.rest_bucket.offer()
    store.rest_rate.record(allowed=decision.allowed)
    headers = {CALL_LIMIT_HEADER: f"{decision.level}/{decision.capacity}"}
    request.state.shopify_headers = headers
    if not decision.allowed:
        raise ShopifyAPIError(
            429,
            {
                "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
            },
            {**headers, "Retry-After": f"{decision.retry_after:.1f}"},
        )
    return RestCall(store, headers)


async def read_json(sim: ShopifySimulator, request: Request, root: str | None = None) -> Any:
    """The JSON body (or its `root` object); 413 when too large, 400 when malformed or missing."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > sim.max_body_bytes:
        raise ShopifyAPIError(413, {"errors": "Request Entity Too Large"})
    raw = await request.body()
    if len(raw) > sim.max_body_bytes:
        raise ShopifyAPIError(413, {"errors": "Request Entity Too Large"})
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise ShopifyAPIError(400, {"errors": f"Malformed JSON in request body: {exc}"}) from None
    if root is None:
        return body
    if not isinstance(body, dict) or not isinstance(body.get(root), dict):
        raise ShopifyAPIError(400, {"errors": {root: "Required parameter missing or invalid"}})
    return body[root]


def int_param(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ShopifyAPIError(400, {"errors": {name: "expected Integer"}}) from None


def int_list(value: str | None, name: str) -> set[int] | None:
    if not value:
        return None
    try:
        return {int(part) for part in value.split(",") if part.strip()}
    except ValueError:
        raise ShopifyAPIError(400, {"errors": {name: "expected a comma-separated list of integers"}}) from None


def _encode_cursor(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")


def _decode_cursor(token: str) -> dict[str, Any]:
    try:
        state = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise ShopifyAPIError(400, {"errors": {"page_info": "Invalid value."}}) from None
    if not isinstance(state, dict) or not isinstance(state.get("f"), dict):
        raise ShopifyAPIError(400, {"errors": {"page_info": "Invalid value."}})
    return state


def paginate(
    request: Request,
    call: RestCall,
    key: str,
    records: Sequence[Mapping[str, Any]],
    filter_names: Sequence[str],
    matches: Callable[[Mapping[str, Any], Mapping[str, str]], bool],
) -> Response:
    """Cursor pagination over `records` (sorted by id) with Link rel=next/previous headers.

    With `page_info`, only `limit` and `fields` may accompany it (the filters travel inside the
    opaque cursor); anything else is a 400, as on the real API.
    """
    q = request.query_params
    limit = int_param(q.get("limit"), "limit") or DEFAULT_LIMIT
    if limit < 1:
        raise ShopifyAPIError(400, {"errors": {"limit": "must be greater than 0"}})
    limit = min(limit, MAX_LIMIT)
    token = q.get("page_info")
    after = before = None
    if token:
        extra = sorted(set(q.keys()) - {"page_info", "limit", "fields"})
        if extra:
            raise ShopifyAPIError(
                400, {"errors": {"page_info": f"cannot be combined with other parameters: {', '.join(extra)}"}}
            )
        cursor = _decode_cursor(token)
        filters: dict[str, str] = cursor["f"]
        after, before = cursor.get("a"), cursor.get("b")
    else:
        filters = {name: q[name] for name in filter_names if q.get(name) not in (None, "")}
    matched = [r for r in records if matches(r, filters)]
    if after is not None:
        page = [r for r in matched if r["id"] > after][:limit]
    elif before is not None:
        page = [r for r in matched if r["id"] < before][-limit:]
    else:
        page = matched[:limit]
    links = []
    if page and matched[0]["id"] < page[0]["id"]:
        links.append(f'<{_page_url(request, limit, {"f": filters, "b": page[0]["id"]})}>; rel="previous"')
    if page and matched[-1]["id"] > page[-1]["id"]:
        links.append(f'<{_page_url(request, limit, {"f": filters, "a": page[-1]["id"]})}>; rel="next"')
    fields = [f for f in (q.get("fields") or "").split(",") if f]
    body = [{k: r[k] for k in fields if k in r} for r in page] if fields else list(page)
    return call.ok({key: body}, extra={"Link": ", ".join(links)} if links else None)


def _page_url(request: Request, limit: int, cursor: dict[str, Any]) -> str:
    params = {"limit": str(limit), "page_info": _encode_cursor(cursor)}
    if request.query_params.get("fields"):
        params["fields"] = request.query_params["fields"]
    return str(request.url.replace(query=urlencode(params, safe=",")))
