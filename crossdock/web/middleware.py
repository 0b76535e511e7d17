"""ASGI middleware: request ids, the body size limit, access logs and HTTP metrics."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from crossdock.core.ids import random_bytes
from crossdock.core.logging import request_id_var
from crossdock.core.metrics import Metrics

log = logging.getLogger("crossdock.access")


class BodyTooLarge(Exception):
    pass


def _error_body(code: str, message: str, details: dict[str, Any]) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "details": details}})


class RequestContextMiddleware:
    """Give each request an id (`X-Request-Id`), cap its body size, log and measure it."""

    def __init__(self, app: Any, *, max_body_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode()[:64] or random_bytes(16).hex()
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status_holder = {"status": 500}

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._reject_too_large(send, rid)
            request_id_var.reset(token)
            return

        received = 0

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge()
            return message

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:
            await self._reject_too_large(send, rid)
            status_holder["status"] = 413
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            metrics = self.metrics
            metrics.child(metrics.http_requests, scope.get("method", ""), path, str(status_holder["status"])).inc()
            metrics.child(metrics.http_latency, path).observe(elapsed)
            if log.isEnabledFor(logging.INFO) and not path.startswith(("/healthz", "/metrics", "/hooks")):
                log.info(
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status_holder["status"],
                        "ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)

    async def _reject_too_large(self, send: Any, rid: str) -> None:
        body = _error_body(
            "payload_too_large",
            f"The request body is larger than the {self.max_body} byte limit.",
            {"limit_bytes": self.max_body},
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", rid.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
