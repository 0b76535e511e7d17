"""OAuth2 client-credentials tokens for Business Central (service-to-service), cached until near expiry.

One token serves every concurrent caller; a lock makes sure only one refresh happens at a time.
The client calls `invalidate` when BC answers 401, so a revoked or clock-skewed token is replaced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from crossdock.connectors.businesscentral.errors import SYSTEM, classify_token_error, unexpected_shape
from crossdock.connectors.transport import RetryPolicy, float_header, parse_json, send_capped, send_with_retry

SCOPE = "https://api.businesscentral.dynamics.com/.default"
PUBLIC_API_HOST = "api.businesscentral.dynamics.com"


def default_token_url(base_url: str, tenant: str) -> str:
    """Entra ID's token endpoint for BC online; a simulator serves it under its own base URL."""
    if httpx.URL(base_url).host == PUBLIC_API_HOST:
        return f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
    return f"{base_url.rstrip('/')}/{tenant}/oauth2/v2.0/token"


class ClientCredentialsToken:
    """Fetches, caches and refreshes one bearer token."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str = SCOPE,
        policy: RetryPolicy,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_response_bytes: int = 1_000_000,
    ) -> None:
        self._http = http
        self._url = token_url
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": scope,
        }
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._limit = max_response_bytes
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.fetched = 0

    async def get(self) -> str:
        """A valid access token, fetched when none is cached or the cached one is about to expire."""
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                await self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget `token` (if it is still the cached one) so the next `get` fetches a new one."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> None:
        async def send() -> httpx.Response:
            request = self._http.build_request("POST", self._url, data=self._form)
            return await send_capped(self._http, request, limit=self._limit, system=SYSTEM)

        response = await send_with_retry(
            send,
            system=SYSTEM,
            policy=self._policy,
            idempotent=True,
            retry_after_of=lambda r: float_header(r, "Retry-After"),
            sleep=self._sleep,
        )
        body = parse_json(response, SYSTEM)
        if response.status_code >= 400:
            raise classify_token_error(response, body)
        token = body.get("access_token") if isinstance(body, dict) else None
        expires_in = body.get("expires_in", 3599) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise unexpected_shape("token response", response, "no access_token")
        try:
            lifetime = float(expires_in)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise unexpected_shape("token response", response, f"expires_in={expires_in!r}") from None
        # Refresh a little early so a token never expires between the check and BC reading it.
        self._expires_at = self._clock() + lifetime - min(300.0, lifetime * 0.1)
        self._token = token
        self.fetched += 1
