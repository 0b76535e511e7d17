"""Who may call the Business Central simulator, and how often: client-credentials tokens and limits.

Tokens mimic Microsoft Entra ID's client-credentials grant (AADSTS error bodies). Limits follow BC
online's per-principal rules: a sliding window of requests (6,000 / 5 min), 5 requests in flight
with the rest queued, and 429 once the queue is full.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crossdock.connectors.sandbox.businesscentral_state import BCError, BCSettings

SCOPE = "https://api.businesscentral.dynamics.com/.default"


class TokenError(Exception):
    """An OAuth2 token endpoint error (`{"error","error_description","error_codes"}`)."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.body = {
            "error": error,
            "error_description": f"AADSTS{aadsts}: {description}",
            "error_codes": [aadsts],
        }


@dataclass
class PrincipalLimits:
    """Per-principal bookkeeping of the sliding window and the concurrency queue."""

    window: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    queued: int = 0
    slots: asyncio.Semaphore | None = None


@dataclass
class AccessCounters:
    tokens_issued: int = 0
    requests: int = 0
    throttled: int = 0
    max_window_count: int = 0
    max_in_flight: int = 0
    max_queued: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class AccessControl:
    """Issues and checks bearer tokens and enforces the per-principal limits."""

    def __init__(self, settings: BCSettings, now: Callable[[], float]) -> None:
        self.settings = settings
        self.now = now
        self.clients: dict[str, str] = {}
        self.tokens: dict[str, tuple[str, float]] = {}  # token → (client_id, expires_at)
        self.limits: dict[str, PrincipalLimits] = {}
        self.counters = AccessCounters()

    def add_client(self, client_id: str, client_secret: str) -> None:
        self.clients[client_id] = client_secret

    def issue_token(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        client_id = form.get("client_id", "")
        if client_id not in self.clients:
            raise TokenError(
                400, "unauthorized_client", 700016, f"Application with identifier '{client_id}' was not found."
            )
        if not secrets.compare_digest(self.clients[client_id].encode(), form.get("client_secret", "").encode()):
            raise TokenError(401, "invalid_client", 7000215, "Invalid client secret provided.")
        if form.get("scope") != SCOPE:
            raise TokenError(
                400, "invalid_scope", 70011, f"The provided value for scope {form.get('scope')} is not valid."
            )
        token = secrets.token_urlsafe(32)
        lifetime = self.settings.token_lifetime_s
        self.tokens[token] = (client_id, self.now() + lifetime)
        self.counters.tokens_issued += 1
        return {
            "token_type": "Bearer",
            "expires_in": math.ceil(lifetime),
            "ext_expires_in": math.ceil(lifetime),
            "access_token": token,
        }

    def authenticate(self, authorization: str | None) -> str:
        """The principal (client id) behind a bearer header, or a 401 `BCError`."""
        scheme, _, token = (authorization or "").partition(" ")
        entry = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if entry is None or entry[1] <= self.now():
            raise BCError(
                401,
                "Authentication_InvalidCredentials",
                "The server has rejected the client credentials.",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return entry[0]

    def expire_tokens(self) -> None:
        self.tokens = {token: (cid, 0.0) for token, (cid, _) in self.tokens.items()}

    async def enter(self, principal: str) -> None:
        """Admit one request: count it in the window, then take a concurrency slot or queue for one."""
        limits = self.limits.setdefault(principal, PrincipalLimits())
        now = self.now()
        horizon = now - self.settings.rate_window_s
        while limits.window and limits.window[0] <= horizon:
            limits.window.popleft()
        if len(limits.window) >= self.settings.rate_limit:
            self.counters.throttled += 1
            retry_after = max(1, math.ceil(limits.window[0] + self.settings.rate_window_s - now))
            raise BCError(
                429,
                # The exact BC code for throttling is not documented in our reference [U]; the message
                # matches what integrators report from BC online.
                "Application_TooManyRequests",
                f"Number of requests exceeded the limit of {self.settings.rate_limit} over the time window of "
                f"{self.settings.rate_window_s:g} seconds.",
                {"Retry-After": str(retry_after)},
            )
        if limits.slots is None:
            limits.slots = asyncio.Semaphore(self.settings.max_concurrent)
        if limits.slots.locked() and limits.queued >= self.settings.max_queued:
            self.counters.throttled += 1
            raise BCError(
                429,
                "Application_TooManyRequests",
                "Too many concurrent requests; the request queue is full.",
                {"Retry-After": "1"},
            )
        limits.window.append(now)
        self.counters.requests += 1
        self.counters.max_window_count = max(self.counters.max_window_count, len(limits.window))
        waiting = limits.slots.locked()
        if waiting:
            limits.queued += 1
            self.counters.max_queued = max(self.counters.max_queued, limits.queued)
        try:
            await limits.slots.acquire()
        finally:
            if waiting:
                limits.queued -= 1
        limits.in_flight += 1
        self.counters.max_in_flight = max(self.counters.max_in_flight, limits.in_flight)

    def leave(self, principal: str) -> None:
        limits = self.limits[principal]
        limits.in_flight -= 1
        if limits.slots is not None:
            limits.slots.release()

    def reset_counters(self) -> None:
        self.counters = AccessCounters()
