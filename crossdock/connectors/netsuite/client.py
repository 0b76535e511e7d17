"""Async client for NetSuite SuiteTalk REST web services with OAuth 1.0a token-based authentication.

Every attempt is signed afresh (new nonce and timestamp). Creates and transforms carry an
`X-NetSuite-Idempotency-Key`, so they are safe to retry: when NetSuite answers `IDEMPOTENCY_ERROR`
the earlier attempt landed, and the client resolves the record it made (by external id, or by
`createdFrom` for transforms) instead of failing. 429 (the account's concurrency limit), 5xx and
timeouts back off with jitter. Every failure is a classified `ConnectorError`.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx

from crossdock.connectors.errors import ConnectorError, FailureCategory
from crossdock.connectors.netsuite.errors import SYSTEM, classify_response, unexpected_shape
from crossdock.connectors.netsuite.oauth1 import authorization_header, realm_for
from crossdock.connectors.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    RetryPolicy,
    float_header,
    parse_json,
    send_capped,
    send_with_retry,
)

Acquire = Callable[[], Awaitable[None]]
IDEMPOTENCY_HEADER = "X-NetSuite-Idempotency-Key"
# SuiteQL `transaction.type` codes of the records a transform can create.
TRANSACTION_TYPES = {
    "salesOrder": "SalesOrd",
    "invoice": "CustInvc",
    "itemFulfillment": "ItemShip",
    "creditMemo": "CustCred",
    "returnAuthorization": "RtnAuth",
    "cashSale": "CashSale",
}


def default_base_url(account_id: str) -> str:
    return f"https://{account_id.lower().replace('_', '-')}.suitetalk.api.netsuite.com"


def sql_string(value: str) -> str:
    """A SuiteQL string literal: single-quoted, with embedded quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"


def record_ref(ident: str) -> str:
    """A path segment for an internal id or an `eid:` external id, percent-encoded."""
    if ident.startswith("eid:"):
        return "eid:" + quote(ident[4:], safe="")
    return quote(ident, safe="")


class NetSuiteClient:
    """Talks to `{base_url}/services/rest` of one NetSuite account."""

    def __init__(
        self,
        base_url: str | None,
        account_id: str,
        consumer_key: str,
        consumer_secret: str,
        token_id: str,
        token_secret: str,
        *,
        http: httpx.AsyncClient | None = None,
        acquire: Acquire | None = None,
        retry: RetryPolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rest_root = f"{(base_url or default_base_url(account_id)).rstrip('/')}/services/rest"
        self.realm = realm_for(account_id)
        self._credentials = (consumer_key, consumer_secret, token_id, token_secret)
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=10.0))
        self._acquire = acquire
        self.retry = retry or RetryPolicy()
        self._limit = max_response_bytes
        self._clock = clock
        self._sleep = sleep
        self._rng = random.Random()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> NetSuiteClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- records ----------------------------------------------------------------------------------
    async def get(self, record_type: str, ident: str, *, expand_sub_resources: bool = False) -> dict[str, Any]:
        params = {"expandSubResources": "true"} if expand_sub_resources else None
        response = await self._request("GET", self._record_url(record_type, ident), params=params, idempotent=True)
        body = parse_json(response, SYSTEM)
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise unexpected_shape("record", response, "no 'id'")
        return body

    async def get_by_external_id(self, record_type: str, external_id: str, **kw: Any) -> dict[str, Any] | None:
        try:
            return await self.get(record_type, f"eid:{external_id}", **kw)
        except ConnectorError as exc:
            if exc.category is FailureCategory.NOT_FOUND:
                return None
            raise

    async def create(self, record_type: str, body: dict[str, Any], *, idempotency_key: str | None = None) -> str:
        """POST a record and return its internal id (from `Location`); replays resolve the first result."""
        key = idempotency_key or str(uuid.uuid4())
        try:
            response = await self._request(
                "POST", f"{self.rest_root}/record/v1/{record_type}", json=body, idempotency_key=key
            )
        except ConnectorError as exc:
            if exc.vendor_code != "IDEMPOTENCY_ERROR":
                raise
            external = body.get("externalId")
            found = await self.get_by_external_id(record_type, str(external)) if external else None
            if found is None:
                raise
            return str(found["id"])
        return self._location_id(response)

    async def upsert(self, record_type: str, external_id: str, body: dict[str, Any]) -> str:
        """PUT by external id: creates the record if absent, else updates it; returns the internal id."""
        response = await self._request("PUT", self._record_url(record_type, f"eid:{external_id}"), json=body)
        return self._location_id(response)

    async def update(self, record_type: str, ident: str, changes: dict[str, Any]) -> None:
        await self._request("PATCH", self._record_url(record_type, ident), json=changes)

    async def delete(self, record_type: str, ident: str) -> None:
        await self._request("DELETE", self._record_url(record_type, ident))

    async def transform(
        self,
        source_type: str,
        source_id: str,
        target_type: str,
        body: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> str:
        """`!transform` a record (e.g. salesOrder → itemFulfillment); returns the new record's id."""
        url = f"{self._record_url(source_type, source_id)}/!transform/{target_type}"
        key = idempotency_key or str(uuid.uuid4())
        try:
            response = await self._request("POST", url, json=body or {}, idempotency_key=key)
        except ConnectorError as exc:
            if exc.vendor_code != "IDEMPOTENCY_ERROR" or target_type not in TRANSACTION_TYPES:
                raise
            source = await self.get(source_type, source_id)
            where = f"createdfrom = {sql_string(source['id'])} AND type = {sql_string(TRANSACTION_TYPES[target_type])}"
            query = f"SELECT id FROM transaction WHERE {where} ORDER BY id"  # noqa: S608 - literals quoted
            made = [row async for row in self.suiteql(query)]
            if not made:
                raise
            return str(made[-1]["id"])
        return self._location_id(response)

    # -- queries ----------------------------------------------------------------------------------
    async def list(
        self, record_type: str, *, q: str | None = None, page_size: int = 1000
    ) -> AsyncIterator[dict[str, Any]]:
        """Every record reference (`{"id", "links"}`) in a collection, optionally filtered by `q`."""
        params = {"q": q} if q else {}
        async for row in self._pages("GET", f"{self.rest_root}/record/v1/{record_type}", params, None, page_size):
            yield row

    async def suiteql(self, query: str, *, page_size: int = 1000) -> AsyncIterator[dict[str, Any]]:
        """Every row of a SuiteQL query, page by page (`Prefer: transient`)."""
        async for row in self._pages("POST", f"{self.rest_root}/query/v1/suiteql", {}, {"q": query}, page_size):
            yield row

    async def _pages(
        self, method: str, url: str, params: dict[str, str], body: dict[str, Any] | None, page_size: int
    ) -> AsyncIterator[dict[str, Any]]:
        offset = 0
        while True:
            page_params = {**params, "limit": str(page_size), "offset": str(offset)}
            headers = {"Prefer": "transient"} if body is not None else None
            response = await self._request(method, url, params=page_params, json=body, headers=headers, idempotent=True)
            page = parse_json(response, SYSTEM)
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise unexpected_shape("page", response, "no 'items' array")
            for row in page["items"]:
                if not isinstance(row, dict):
                    raise unexpected_shape("page", response, "an item is not an object")
                yield row
            if not page.get("hasMore") or not page["items"]:
                return
            offset += len(page["items"])

    # -- transport ----------------------------------------------------------------------------------
    def _record_url(self, record_type: str, ident: str) -> str:
        return f"{self.rest_root}/record/v1/{record_type}/{record_ref(ident)}"

    def _location_id(self, response: httpx.Response) -> str:
        location = response.headers.get("location", "")
        ident = location.rstrip("/").rsplit("/", 1)[-1] if location else ""
        if not ident:
            raise unexpected_shape("response", response, "no Location header with the record id")
        return ident

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        extra = dict(headers or {})
        if idempotency_key is not None:
            extra[IDEMPOTENCY_HEADER] = idempotency_key
        consumer_key, consumer_secret, token_id, token_secret = self._credentials

        async def send() -> httpx.Response:
            request = self._http.build_request(method, url, params=params, json=json, headers=extra)
            request.headers["Authorization"] = authorization_header(
                method,
                str(request.url),
                realm=self.realm,
                consumer_key=consumer_key,
                consumer_secret=consumer_secret,
                token_id=token_id,
                token_secret=token_secret,
                timestamp=int(self._clock()),
            )
            return await send_capped(self._http, request, limit=self._limit, system=SYSTEM)

        response = await send_with_retry(
            send,
            system=SYSTEM,
            policy=self.retry,
            # Without an idempotency key a POST that timed out may have landed; with one, replay is safe.
            idempotent=idempotent,
            retry_after_of=lambda r: float_header(r, "Retry-After"),
            before=self._acquire,
            sleep=self._sleep,
            rng=self._rng,
        )
        if response.status_code >= 400:
            raise classify_response(response, _error_body(response))
        return response


def _error_body(response: httpx.Response) -> Any:
    try:
        return parse_json(response, SYSTEM)
    except ConnectorError:
        return None
