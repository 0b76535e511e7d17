"""Retrying, size-capped HTTP transport shared by every connector client.

One loop decides what is worth retrying and for how long: 429 always (it means "not processed"),
connection failures before the request was sent always, and 5xx, read timeouts and dropped
connections only for idempotent calls (a POST that timed out may have been applied). Backoff is
capped exponential with jitter; a vendor's `Retry-After` (or equivalent) wins over the schedule.
When attempts run out the caller gets a `ConnectorError(kind=TRANSIENT)`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind

Acquire = Callable[[], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try a call and how long to wait between tries."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    # A Retry-After longer than this is not waited out in-process; the error carries it instead.
    max_retry_after_s: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Equal-jitter exponential backoff after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def describe(body: Any) -> str:
    """A short human rendering of a vendor error body."""
    if isinstance(body, dict):
        for key in ("errors", "error", "ExceptionMessage", "Message", "message"):
            if key in body:
                return describe(body[key])
        return orjson.dumps(body).decode()[:500]
    if isinstance(body, list):
        return "; ".join(describe(item) for item in body)[:500]
    return str(body)[:500]


def parse_json(response: httpx.Response, system: str) -> Any:
    """The response's JSON, or a classified error saying the vendor sent something unreadable."""
    if not response.content:
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise ConnectorError(
            f"{system} answered {response.request.method} {response.request.url.path} with HTTP "
            f"{response.status_code} but the body is not valid JSON ({exc}). This is usually a proxy or "
            "outage page; the call is safe to retry once the service is healthy.",
            kind=FailureKind.TRANSIENT,
            category=FailureCategory.CONNECTION,
            system=system,
            status=response.status_code,
            vendor_code="malformed_response",
            details={"body_excerpt": response.text[:200]},
        ) from None


def _exhausted(
    system: str, last: str, status: int | None, rate_limited: bool, retry_after: float | None
) -> ConnectorError:
    category = FailureCategory.RATE_LIMIT if rate_limited else FailureCategory.CONNECTION
    return ConnectorError(
        f"{system} call failed after retries: {last}. It is transient; retry later.",
        kind=FailureKind.TRANSIENT,
        category=category,
        system=system,
        status=status,
        retry_after=retry_after,
    )


async def send_with_retry(
    send: Callable[[], Awaitable[httpx.Response]],
    *,
    system: str,
    policy: RetryPolicy,
    idempotent: bool,
    retry_after_of: Callable[[httpx.Response], float | None],
    before: Callable[[], Awaitable[None]] | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> httpx.Response:
    """Send until a response worth classifying arrives; transient failures are retried.

    Returns any response that is not retryable (2xx and the non-retryable 4xx/5xx), leaving its
    classification to the vendor client.
    """
    rng = rng or random.Random()
    for attempt in range(1, policy.max_attempts + 1):
        if before is not None:
            await before()
        retry_after: float | None = None
        try:
            response = await send()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            last, status, rate_limited = f"could not connect ({type(exc).__name__})", None, False
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            last, status, rate_limited = f"connection failed mid-request ({type(exc).__name__})", None, False
            if not idempotent:
                raise _exhausted(
                    system, last + "; not retried because the call is not idempotent", None, False, None
                ) from exc
        else:
            status = response.status_code
            if status == 429:
                last, rate_limited = "rate limited (HTTP 429)", True
                retry_after = retry_after_of(response)
            elif status >= 500 and idempotent:
                last, rate_limited = f"server error (HTTP {status})", False
                retry_after = retry_after_of(response)
            else:
                return response
        if retry_after is not None and retry_after > policy.max_retry_after_s:
            raise _exhausted(system, f"{last}; asked to wait {retry_after:.0f}s", status, rate_limited, retry_after)
        if attempt == policy.max_attempts:
            raise _exhausted(system, f"{last} on all {attempt} attempts", status, rate_limited, retry_after)
        await sleep(retry_after if retry_after is not None else policy.backoff(attempt, rng))
    raise AssertionError("unreachable")  # pragma: no cover


def float_header(response: httpx.Response, name: str) -> float | None:
    value = response.headers.get(name)
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


DEFAULT_MAX_RESPONSE_BYTES = 50_000_000


async def send_capped(http: httpx.AsyncClient, request: httpx.Request, *, limit: int, system: str) -> httpx.Response:
    """Send `request`; return a fully read response, or raise if the body exceeds `limit` bytes."""
    response = await http.send(request, stream=True)
    try:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(request, response.status_code, int(declared), limit, system)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise _too_large(request, response.status_code, size, limit, system)
            chunks.append(chunk)
    finally:
        await response.aclose()
    return httpx.Response(
        response.status_code,
        headers=[
            (k, v) for k, v in response.headers.multi_items() if k.lower() not in ("content-encoding", "content-length")
        ],
        content=b"".join(chunks),
        request=request,
    )


def _too_large(request: httpx.Request, status: int, size: int, limit: int, system: str) -> ConnectorError:
    return ConnectorError(
        f"{system} answered {request.method} {request.url.path} with a body of at least {size} bytes, over the "
        f"{limit}-byte limit. Narrow the request (filter, select, smaller pages) or raise the limit.",
        kind=FailureKind.DATA,
        category=FailureCategory.VALIDATION,
        system=system,
        status=status,
        vendor_code="response_too_large",
    )


def vendor_rejection(
    vendor: str,
    system: str,
    response: httpx.Response,
    code: str,
    message: str,
    kind: FailureKind,
    category: FailureCategory,
) -> ConnectorError:
    """The classified error for a vendor's HTTP ≥ 400 answer, worded the same for every connector."""
    status = response.status_code
    return ConnectorError(
        f"{vendor} rejected {response.request.method} {response.request.url.path} "
        f"(HTTP {status} {code or 'no code'}): {message}",
        kind=kind,
        category=category,
        system=system,
        status=status,
        retry_after=float_header(response, "Retry-After"),
        vendor_code=code or None,
    )
