"""Fault injection shared by every simulator: latency, error rates, 5xx, timeouts, dropped connections.

Each simulator owns one `FaultPlan` and wraps its ASGI app in `FaultMiddleware`. The control API
(`POST {prefix}/_control/faults`) replaces the plan; tests may also set it directly in-process.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FaultPlan(BaseModel):
    """What a simulator should do wrong, and how often. All rates are probabilities 0..1."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(0, ge=0, description="Extra latency added to every request.")
    jitter_ms: float = Field(0, ge=0, description="Uniform random extra latency, 0..jitter_ms.")
    error_rate: float = Field(0, ge=0, le=1, description="Share of requests answered with `error_status`.")
    error_status: int = Field(503, ge=400, le=599, description="Status used for injected errors.")
    timeout_rate: float = Field(0, ge=0, le=1, description="Share of requests that hang `timeout_s`.")
    timeout_s: float = Field(30, ge=0, description="How long a 'timed out' request hangs.")
    drop_rate: float = Field(0, ge=0, le=1, description="Share of requests whose connection is dropped.")
    throttle_burst: int = Field(0, ge=0, description="The next N requests are answered 429.")
    paths: list[str] = Field(
        default_factory=list, description="Only requests whose path contains one of these; empty = all."
    )


class DroppedConnection(Exception):
    """Raised inside the ASGI app so the server closes the socket without a response."""


@dataclass
class FaultState:
    plan: FaultPlan = field(default_factory=FaultPlan)
    rng: random.Random = field(default_factory=random.Random)
    injected: dict[str, int] = field(default_factory=dict)

    def set(self, plan: FaultPlan) -> None:
        self.plan = plan

    def clear(self) -> None:
        self.plan = FaultPlan()

    def _count(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1


class FaultMiddleware:
    """ASGI middleware applying a `FaultState` to requests (control paths are never faulted)."""

    def __init__(self, app: Any, state: FaultState, *, throttle_headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.state = state
        self.throttle_headers = throttle_headers or {"Retry-After": "1"}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or "/_control" in scope.get("path", ""):
            await self.app(scope, receive, send)
            return
        plan = self.state.plan
        if plan.paths and not any(p in scope.get("path", "") for p in plan.paths):
            await self.app(scope, receive, send)
            return
        rng = self.state.rng
        delay = plan.latency_ms + (rng.uniform(0, plan.jitter_ms) if plan.jitter_ms else 0)
        if delay:
            await asyncio.sleep(delay / 1000)
        if plan.throttle_burst > 0:
            plan.throttle_burst -= 1
            self.state._count("throttle")
            await _respond(send, 429, b'{"errors":"Exceeded API rate limit (injected)"}', self.throttle_headers)
            return
        if plan.drop_rate and rng.random() < plan.drop_rate:
            self.state._count("drop")
            raise DroppedConnection("fault injection: connection dropped")
        if plan.timeout_rate and rng.random() < plan.timeout_rate:
            self.state._count("timeout")
            await asyncio.sleep(plan.timeout_s)
        if plan.error_rate and rng.random() < plan.error_rate:
            self.state._count("error")
            await _respond(
                send, plan.error_status, b'{"error":{"code":"Internal_ServerError","message":"injected fault"}}', {}
            )
            return
        await self.app(scope, receive, send)


async def _respond(send: Any, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def add_fault_routes(app: Any, faults: FaultState) -> None:
    """`POST /_control/faults` (replace the plan) and `DELETE /_control/faults` (clear it) on `app`."""

    @app.post("/_control/faults")
    async def set_faults(plan: FaultPlan) -> dict[str, Any]:
        faults.set(plan)
        return plan.model_dump()

    @app.delete("/_control/faults")
    async def clear_faults() -> dict[str, bool]:
        faults.clear()
        return {"cleared": True}
