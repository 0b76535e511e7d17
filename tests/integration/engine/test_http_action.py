"""The built-in `http.request` action against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from crossdock.bootstrap import Container
from crossdock.engine.core import Engine

from .conftest import new_merchant, publish, run_to_rest, start


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def login(request: web.Request) -> web.Response:
        seen.append({"path": request.path, "cookie": request.headers.get("Cookie")})
        response = web.json_response({"ok": True})
        response.set_cookie("session", "merchant-a-secret")
        return response

    async def echo(request: web.Request) -> web.Response:
        seen.append(
            {
                "path": request.path,
                "cookie": request.headers.get("Cookie"),
                "key": request.headers.get("Idempotency-Key"),
                "body": await request.json(),
            }
        )
        return web.json_response({"received": True}, status=201)

    app = web.Application()
    app.router.add_post("/login", login)
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        # A host name, not an IP: aiohttp's default jar ignores cookies set by IP addresses.
        yield f"http://localhost:{port}", seen
    finally:
        await runner.cleanup()


def _post(step_id: str, url: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "action",
        "action": "http.request",
        "input": {"url": url, "json": {"order": "=input.order", "merchant": "=run.merchant_id"}},
    }


async def test_cookies_never_cross_from_one_run_to_another(
    container: Container, engine: Engine, server: tuple[str, list[dict[str, Any]]]
) -> None:
    base, seen = server
    a = await new_merchant(container, "A")
    b = await new_merchant(container, "B")
    flow_a = await publish(
        container, engine, a, "login", {"steps": [_post("login", f"{base}/login"), _post("echo", f"{base}/echo")]}
    )
    flow_b = await publish(container, engine, b, "echo", {"steps": [_post("echo", f"{base}/echo")]})
    run_a = await start(container, flow_a, {"order": "A-1"})
    assert (await run_to_rest(container, engine))[run_a] == "succeeded"
    run_b = await start(container, flow_b, {"order": "B-1"})
    assert (await run_to_rest(container, engine))[run_b] == "succeeded"

    echoes = [s for s in seen if s["path"] == "/echo"]
    assert [e["body"] for e in echoes] == [{"order": "A-1", "merchant": a}, {"order": "B-1", "merchant": b}]
    # The session cookie merchant A's endpoint set reaches neither A's next request nor B's.
    assert [s["cookie"] for s in seen] == [None, None, None]
    # Each request carries its own idempotency key.
    assert echoes[0]["key"] and echoes[1]["key"] and echoes[0]["key"] != echoes[1]["key"]
