"""Celery peer: the task that maps an order and POSTs it to the ERP with httpx.

Broker: a dedicated non-durable Redis (``--save '' --appendonly no``) started by
the harness. No result backend (results ignored). Each worker process reuses
one ``httpx.Client`` (keep-alive). The mapping is the harness's reference
``map_order`` (imported from ``bench/harness/orders.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import orjson
from celery import Celery

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ -> import harness

from harness.orders import map_order

ERP_URL = os.environ["BENCH_ERP_URL"]

app = Celery("crossdock_bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_client: httpx.Client | None = None


def client() -> httpx.Client:
    """One keep-alive HTTP client per worker process (created after fork)."""
    global _client
    if _client is None:
        _client = httpx.Client(timeout=30.0)
    return _client


@app.task(name="bench.deliver_order", autoretry_for=(httpx.TransportError,), max_retries=3)
def deliver_order(raw: str) -> None:
    """Map one Shopify order and POST it with its Idempotency-Key."""
    key, body = map_order(orjson.loads(raw))
    resp = client().post(
        ERP_URL,
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json", "Idempotency-Key": key},
    )
    resp.raise_for_status()
