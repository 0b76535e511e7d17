"""The ceiling: the least work any system can do for this workload.

A single-process aiohttp server (aiohttp's defaults: stock asyncio loop;
``--uvloop`` to experiment) that verifies the
HMAC, maps the order and POSTs the sales order through one reused
``aiohttp.ClientSession``. It stores nothing: a crash loses whatever is in
flight. It answers the webhook right after verifying and then maps and posts
in a background task -- the same ack-then-deliver shape as every peer here
(Celery, Node-RED, n8n, Crossdock all ack before the ERP call), so its ack
latency is comparable; the ERP recorder's timestamps give end-to-end latency.

Run: ``python -m harness.ceiling --port 8101 --erp http://127.0.0.1:8100/erp/sales_orders``
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from .orders import SECRET, map_order, verify


def make_app(erp_url: str, secret: str = SECRET) -> web.Application:
    """Build the ceiling app; the ERP client session lives with the app."""
    state: dict = {"tasks": set()}

    async def deliver(raw: bytes) -> None:
        key, body = map_order(orjson.loads(raw))
        for attempt in range(3):
            try:
                async with state["session"].post(
                    erp_url,
                    data=orjson.dumps(body),
                    headers={"Content-Type": "application/json", "Idempotency-Key": key},
                ) as resp:
                    await resp.read()
                    if resp.status < 500:
                        return
            except Exception:
                pass
            await asyncio.sleep(0.05 * (attempt + 1))

    async def webhook(request: web.Request) -> web.Response:
        raw = await request.read()
        if not verify(raw, request.headers.get("X-Shopify-Hmac-Sha256"), secret):
            return web.Response(status=401, text="bad hmac")
        task = asyncio.get_running_loop().create_task(deliver(raw))
        state["tasks"].add(task)
        task.add_done_callback(state["tasks"].discard)
        return web.Response(status=200, text="ok")

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def on_startup(_: web.Application) -> None:
        state["session"] = ClientSession(connector=TCPConnector(limit=64), timeout=ClientTimeout(total=30))

    async def on_cleanup(_: web.Application) -> None:
        await state["session"].close()

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/webhooks/shopify", webhook)
    app.router.add_get("/health", health)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--erp", required=True)
    ap.add_argument("--uvloop", action="store_true", help="use uvloop (default: stock asyncio)")
    args = ap.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    web.run_app(make_app(args.erp), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
