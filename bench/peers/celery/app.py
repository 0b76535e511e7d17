"""Celery peer: FastAPI webhook endpoint (run under uvicorn).

Verifies the Shopify HMAC on the raw body and enqueues ``bench.deliver_order``
with the raw JSON; answers 200 once the task is on the Redis queue.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi import FastAPI, Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ -> import harness
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.orders import verify
from tasks import deliver_order

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/webhooks/shopify")
async def webhook(request: Request) -> Response:
    raw = await request.body()
    if not verify(raw, request.headers.get("x-shopify-hmac-sha256")):
        return Response("bad hmac", status_code=401)
    deliver_order.delay(raw.decode())  # a local Redis LPUSH: fast enough to call inline
    return Response("ok")


@app.get("/health")
async def health() -> Response:
    return Response("ok")
