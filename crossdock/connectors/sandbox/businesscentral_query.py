"""OData query options for the Business Central simulator: `$filter $select $expand $top $skip`, paging.

Server-driven paging is key-based like BC's `$skiptoken`: the token holds the sort key of the last
row sent, so rows inserted while a client pages never cause duplicates or gaps before the cursor.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from crossdock.connectors.sandbox.businesscentral_state import BCError
from crossdock.connectors.sandbox.odata import Node, ODataFilterError, matches, members, parse_filter

_MAXPAGESIZE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)")
_SUPPORTED = {"$filter", "$select", "$expand", "$top", "$skip", "$skiptoken", "$count", "$schemaversion"}


@dataclass(frozen=True)
class ODataQuery:
    filter: Node | None = None
    select: list[str] | None = None
    expand: bool = False
    top: int | None = None
    skip: int = 0
    skiptoken: tuple[Any, ...] | None = None
    prefer_page_size: int | None = None

    @classmethod
    def from_request(cls, request: Request, fields: Mapping[str, Any], lines: str | None) -> ODataQuery:
        params = request.query_params
        for name in params:
            if name.startswith("$") and name not in _SUPPORTED:
                raise BCError(400, "BadRequest", f"The query option '{name}' is not supported by this simulator.")
        node = None
        if "$filter" in params:
            try:
                node = parse_filter(params["$filter"])
            except ODataFilterError as exc:
                raise BCError(400, "BadRequest_NotFound", f"Bad Request - Error in query syntax: {exc}") from exc
            for name in sorted(members(node) - set(fields)):
                raise BCError(400, "BadRequest_NotFound", f"Could not find a property named '{name}'.")
        select = None
        if "$select" in params:
            select = [s.strip() for s in params["$select"].split(",") if s.strip()]
            for name in select:
                if name not in fields:
                    raise BCError(400, "BadRequest_NotFound", f"Could not find a property named '{name}'.")
        expand = False
        if "$expand" in params:
            wanted = {s.strip() for s in params["$expand"].split(",") if s.strip()}
            if lines is None or wanted - {lines}:
                bad = sorted(wanted - {lines})[0] if wanted - {lines} else params["$expand"]
                raise BCError(400, "BadRequest_NotFound", f"Could not find a property named '{bad}'.")
            expand = True
        token = None
        if "$skiptoken" in params:
            try:
                token = tuple(orjson.loads(base64.urlsafe_b64decode(params["$skiptoken"].encode())))
            except (ValueError, orjson.JSONDecodeError) as exc:
                raise BCError(400, "BadRequest", "The skip token value is not valid.") from exc
        prefer = _MAXPAGESIZE.search(request.headers.get("prefer", ""))
        return cls(
            filter=node,
            select=select,
            expand=expand,
            top=_non_negative(params, "$top"),
            skip=_non_negative(params, "$skip") or 0,
            skiptoken=token,
            prefer_page_size=int(prefer.group(1)) if prefer else None,
        )


def _non_negative(params: Mapping[str, str], name: str) -> int | None:
    if name not in params:
        return None
    value = params[name]
    if not value.isdigit():
        raise BCError(400, "BadRequest", f"Invalid value '{value}' for {name} query option.")
    return int(value)


def _sort_key(row: Mapping[str, Any], order: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple("" if row.get(f) is None else row.get(f) for f in order)


def page_records(
    rows: list[dict[str, Any]], order: tuple[str, ...], query: ODataQuery, max_page_size: int
) -> tuple[list[dict[str, Any]], dict[str, str] | None, int]:
    """Filter, order and cut one page; returns (page, query params of the next link or None, page size)."""
    if query.filter is not None:
        node = query.filter
        try:
            rows = [r for r in rows if matches(node, r)]
        except ODataFilterError as exc:
            raise BCError(400, "BadRequest_NotFound", f"Bad Request - Error in query syntax: {exc}") from exc
    rows = sorted(rows, key=lambda r: _sort_key(r, order))
    if query.skiptoken is not None:
        cursor = query.skiptoken
        try:
            rows = [r for r in rows if _sort_key(r, order) > cursor]
        except TypeError as exc:
            raise BCError(400, "BadRequest", "The skip token value is not valid.") from exc
    else:
        rows = rows[query.skip :]
    if query.top is not None:
        rows = rows[: query.top]
    page_size = min(query.prefer_page_size or max_page_size, max_page_size)
    page = rows[:page_size]
    if len(rows) <= page_size:
        return page, None, page_size
    token = base64.urlsafe_b64encode(orjson.dumps(list(_sort_key(page[-1], order)))).decode()
    next_query = {"$skiptoken": token}
    if query.top is not None:
        next_query["$top"] = str(query.top - len(page))
    return page, next_query, page_size
