"""A bare ASGI route for `POST /hooks/shopify/{connection_id}`, in front of FastAPI's router.

This is the path that must be fastest: storefronts wait on it, and a busy shop sends many deliveries
per second. Through FastAPI each delivery paid for route matching over every router, the dependency
solver, the exception middleware and response validation: about half of the API's CPU per webhook
(profile in docs/performance.md). This route does the same work without them: it reads the body
under the size cap, calls `shopify_delivery` (the same verification, deduplication and group-commit
intake as the declared FastAPI route, which stays for the OpenAPI document), and answers with the
same body and error shape. Everything else falls through to the app unchanged.

It sits inside `RequestContextMiddleware`, so request ids, the global body limit and HTTP metrics
apply as for every other route.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from crossdock.connectors.intake_api import SHOPIFY_ROUTE, body_too_large, shopify_delivery
from crossdock.core.errors import CrossdockError, ErrorCode
from crossdock.core.logging import request_id_var
from crossdock.web.middleware import BodyTooLarge

log = logging.getLogger("crossdock.connectors.intake")

_PREFIX = "/hooks/shopify/"
_JSON = [(b"content-type", b"application/json")]


class _Route:
    """What `RequestContextMiddleware` reads from `scope["route"]` to label metrics."""

    path = SHOPIFY_ROUTE


_ROUTE = _Route()


class ShopifyIntakeRoute:
    def __init__(self, app: Any, *, container: Any) -> None:
        self.app = app
        self.container = container
        self.limit = int(container.settings.api.max_body_bytes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or not path.startswith(_PREFIX):
            await self.app(scope, receive, send)
            return
        connection_id = path[len(_PREFIX) :]
        if not connection_id or "/" in connection_id:
            await self.app(scope, receive, send)
            return
        scope["route"] = _ROUTE
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        extra: list[tuple[bytes, bytes]] = []
        try:
            raw = await self._body(receive, headers.get("content-length", ""))
            status, body = 200, orjson.dumps(await shopify_delivery(self.container, connection_id, raw, headers))
        except CrossdockError as exc:
            status, body = exc.http_status, orjson.dumps(exc.to_body())
            retry_after = exc.details.get("retry_after")
            if retry_after is not None:
                extra.append((b"retry-after", str(int(retry_after)).encode()))
        except BodyTooLarge:
            raise  # RequestContextMiddleware answers 413 for the whole app
        except Exception:
            log.exception("unhandled error in the Shopify intake")
            rid = request_id_var.get()
            error = CrossdockError(
                f"Internal error. Quote request id {rid} when reporting it.",
                code=ErrorCode.INTERNAL,
                details={"request_id": rid},
            )
            status, body = 500, orjson.dumps(error.to_body())
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON, (b"content-length", str(len(body)).encode()), *extra],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _body(self, receive: Any, declared: str) -> bytes:
        if declared.isdigit() and int(declared) > self.limit:
            raise body_too_large(self.limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise CrossdockError("The client went away before sending the whole body.", code=ErrorCode.BAD_REQUEST)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise body_too_large(self.limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
