"""Async client for the Dynamics 365 Business Central API v2.0 (one company of one environment).

Reads follow `@odata.nextLink`; writes use `If-Match` with a fresh ETag and, when another writer
got there first (`Request_EntityChanged`), re-read the ETag and re-apply only the caller's fields,
so no one's update is lost. 429/5xx/timeouts retry with capped, jittered backoff honouring
`Retry-After`; a 401 replaces the token once. Every failure is a classified `ConnectorError`.
"""

from __future__ import annotations

import asyncio
import builtins
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from crossdock.connectors.businesscentral.auth import ClientCredentialsToken, default_token_url
from crossdock.connectors.businesscentral.errors import SYSTEM, classify_response, unexpected_shape
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    RetryPolicy,
    float_header,
    parse_json,
    send_capped,
    send_with_retry,
)

Acquire = Callable[[], Awaitable[None]]


def odata_string(value: str) -> str:
    """An OData string literal: single-quoted, with embedded quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class SalesOrderUpsert:
    order: dict[str, Any]
    created: bool


class BusinessCentralClient:
    """Talks to `{base_url}/v2.0/{tenant}/{environment}/api/v2.0/companies({company_id})`."""

    def __init__(
        self,
        base_url: str,
        tenant: str,
        environment: str,
        company_id: str,
        client_id: str,
        client_secret: str,
        *,
        token_url: str | None = None,
        http: httpx.AsyncClient | None = None,
        acquire: Acquire | None = None,
        retry: RetryPolicy | None = None,
        max_conflict_retries: int = 8,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        base = base_url.rstrip("/")
        self.api_root = f"{base}/v2.0/{tenant}/{environment}/api/v2.0"
        self.company_url = f"{self.api_root}/companies({company_id})"
        self._origin = httpx.URL(base).copy_with(path="/", query=None)
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=10.0))
        self._acquire = acquire
        self.retry = retry or RetryPolicy()
        self.max_conflict_retries = max_conflict_retries
        self._limit = max_response_bytes
        self._sleep = sleep
        self._rng = random.Random()
        self.tokens = ClientCredentialsToken(
            self._http,
            token_url or default_token_url(base, tenant),
            client_id,
            client_secret,
            policy=self.retry,
            clock=clock,
            sleep=sleep,
        )

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> BusinessCentralClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- generic entity operations --------------------------------------------------------------
    async def list(
        self,
        entity: str,
        *,
        filter: str | None = None,
        select: Iterable[str] | None = None,
        expand: str | None = None,
        top: int | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every entity matching the query, following server-driven paging (`@odata.nextLink`)."""
        params: dict[str, str] | None = _query(filter=filter, select=select, expand=expand, top=top)
        headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else {}
        url: str | None = f"{self.company_url}/{entity}"
        while url is not None:
            response = await self._request("GET", url, params=params, headers=headers, idempotent=True)
            body = parse_json(response, SYSTEM)
            if not isinstance(body, dict) or not isinstance(body.get("value"), list):
                raise unexpected_shape("collection", response, "no 'value' array")
            for row in body["value"]:
                if not isinstance(row, dict):
                    raise unexpected_shape("collection", response, "an entry is not an object")
                yield row
            url = self._next_link(response, body.get("@odata.nextLink"))
            params = None

    async def list_all(self, entity: str, **query: Any) -> builtins.list[dict[str, Any]]:
        return [row async for row in self.list(entity, **query)]

    async def find_one(self, entity: str, filter: str) -> dict[str, Any] | None:
        """The first entity matching `filter`, or None."""
        async for row in self.list(entity, filter=filter, top=1):
            return row
        return None

    async def get(self, entity: str, entity_id: str, *, expand: str | None = None) -> dict[str, Any]:
        response = await self._request(
            "GET", f"{self.company_url}/{entity}({entity_id})", params=_query(expand=expand), idempotent=True
        )
        return _entity(response)

    async def create(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a new entity (deep insert of lines allowed); not retried on 5xx/timeouts (it may have landed)."""
        response = await self._request("POST", f"{self.company_url}/{entity}", json=body, idempotent=False)
        return _entity(response)

    async def update(
        self, entity: str, entity_id: str, changes: dict[str, Any], *, etag: str | None = None
    ) -> dict[str, Any]:
        """PATCH `changes` with If-Match; on a stale ETag re-read and re-apply (other fields keep their values)."""
        url = f"{self.company_url}/{entity}({entity_id})"
        for attempt in range(self.max_conflict_retries + 1):
            if etag is None:
                etag = _etag(await self.get(entity, entity_id))
            try:
                response = await self._request("PATCH", url, json=changes, headers={"If-Match": etag}, idempotent=True)
                return _entity(response)
            except ConnectorError as exc:
                if exc.category is not FailureCategory.STALE_WRITE or attempt == self.max_conflict_retries:
                    raise
                etag = None
                await self._sleep(self.retry.backoff(attempt + 1, self._rng))
        raise AssertionError("unreachable")  # pragma: no cover

    async def delete(self, entity: str, entity_id: str, *, etag: str | None = None) -> None:
        """DELETE; without an ETag it deletes whatever version is current (`If-Match: *`)."""
        url = f"{self.company_url}/{entity}({entity_id})"
        await self._request("DELETE", url, headers={"If-Match": etag or "*"}, idempotent=True)

    async def action(self, entity: str, entity_id: str, action: str) -> None:
        """Invoke a bound action such as `Microsoft.NAV.post` (answers 204)."""
        url = f"{self.company_url}/{entity}({entity_id})/{action}"
        await self._request("POST", url, idempotent=False)

    # -- business operations ---------------------------------------------------------------------
    async def list_companies(self) -> builtins.list[dict[str, Any]]:
        response = await self._request("GET", f"{self.api_root}/companies", idempotent=True)
        body = parse_json(response, SYSTEM)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise unexpected_shape("collection", response, "no 'value' array")
        return list(body["value"])

    async def upsert_sales_order(self, order: dict[str, Any]) -> SalesOrderUpsert:
        """Create the order unless one with the same `externalDocumentNumber` exists (idempotent)."""
        external = order.get("externalDocumentNumber")
        if not isinstance(external, str) or not external:
            raise ConnectorError(
                "A sales order upsert needs an externalDocumentNumber (the storefront order reference).",
                kind=FailureKind.CONFIG,
                category=FailureCategory.VALIDATION,
                system=SYSTEM,
            )
        where = f"externalDocumentNumber eq {odata_string(external)}"
        for attempt in range(1, self.retry.max_attempts + 1):
            existing = await self.find_one("salesOrders", where)
            if existing is not None:
                return SalesOrderUpsert(existing, created=False)
            try:
                return SalesOrderUpsert(await self.create("salesOrders", order), created=True)
            except ConnectorError as exc:
                # The POST may have landed before the failure; the lookup above tells on the next turn.
                if not exc.transient or attempt == self.retry.max_attempts:
                    raise
                await self._sleep(exc.retry_after or self.retry.backoff(attempt, self._rng))
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_item_by_number(self, number: str) -> dict[str, Any] | None:
        return await self.find_one("items", f"number eq {odata_string(number)}")

    async def get_items_by_number(self, numbers: Iterable[str], *, chunk: int = 20) -> dict[str, dict[str, Any]]:
        """Items keyed by number; numbers BC does not know are absent from the result."""
        wanted = sorted(set(numbers))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), chunk):
            part = wanted[start : start + chunk]
            where = " or ".join(f"number eq {odata_string(n)}" for n in part)
            async for item in self.list("items", filter=where):
                found[str(item.get("number"))] = item
        return found

    async def create_credit_memo(self, memo: dict[str, Any]) -> dict[str, Any]:
        return await self.create("salesCreditMemos", memo)

    async def post_credit_memo(self, memo_id: str) -> None:
        await self.action("salesCreditMemos", memo_id, "Microsoft.NAV.post")

    async def ship_and_invoice(self, order_id: str) -> None:
        await self.action("salesOrders", order_id, "Microsoft.NAV.shipAndInvoice")

    # -- transport ----------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        idempotent: bool,
    ) -> httpx.Response:
        refreshed = False
        while True:
            token = await self.tokens.get()
            request = self._http.build_request(
                method,
                url,
                params=params,
                json=json,
                headers={**(headers or {}), "Authorization": f"Bearer {token}", "Accept": "application/json"},
            )

            async def send(request: httpx.Request = request) -> httpx.Response:
                return await send_capped(self._http, request, limit=self._limit, system=SYSTEM)

            response = await send_with_retry(
                send,
                system=SYSTEM,
                policy=self.retry,
                idempotent=idempotent,
                retry_after_of=lambda r: float_header(r, "Retry-After"),
                before=self._acquire,
                sleep=self._sleep,
                rng=self._rng,
            )
            if response.status_code == 401 and not refreshed:
                self.tokens.invalidate(token)  # expired or revoked: one fresh token, one more try
                refreshed = True
                continue
            if response.status_code >= 400:
                raise classify_response(response, _error_body(response))
            return response

    def _next_link(self, response: httpx.Response, link: Any) -> str | None:
        if link is None:
            return None
        if not isinstance(link, str):
            raise unexpected_shape("@odata.nextLink", response, repr(link)[:100])
        url = httpx.URL(link)
        if (url.scheme, url.host, url.port) != (self._origin.scheme, self._origin.host, self._origin.port):
            # Never send the bearer token to another origin, whatever the server says.
            raise ConnectorError(
                f"Business Central returned a nextLink to another origin ({url.host}); refusing to follow it.",
                kind=FailureKind.CONFIG,
                category=FailureCategory.CONNECTION,
                system=SYSTEM,
                vendor_code="foreign_next_link",
            )
        return link


def _query(
    *, filter: str | None = None, select: Iterable[str] | None = None, expand: str | None = None, top: int | None = None
) -> dict[str, str]:
    params: dict[str, str] = {}
    if filter:
        params["$filter"] = filter
    if select:
        params["$select"] = ",".join(select)
    if expand:
        params["$expand"] = expand
    if top is not None:
        params["$top"] = str(top)
    return params


def _error_body(response: httpx.Response) -> Any:
    try:
        return parse_json(response, SYSTEM)
    except ConnectorError:
        return None  # an HTML error page: classify by status alone


def _entity(response: httpx.Response) -> dict[str, Any]:
    if response.status_code == 204:
        return {}
    body = parse_json(response, SYSTEM)
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise unexpected_shape("entity", response, "no 'id'")
    return body


def _etag(entity: dict[str, Any]) -> str:
    etag = entity.get("@odata.etag")
    if not isinstance(etag, str) or not etag:
        raise ConnectorError(
            "Business Central returned an entity without @odata.etag; cannot update it safely.",
            kind=FailureKind.TRANSIENT,
            category=FailureCategory.CONNECTION,
            system=SYSTEM,
            vendor_code="unexpected_response",
        )
    return etag
