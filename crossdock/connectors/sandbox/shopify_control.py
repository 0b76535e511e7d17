"""Control API of the Shopify simulator (`/_control/...`): seed, reset, faults, credentials, counters.

Not part of Shopify's contract; tests, the demo and the benchmark drive the simulator through it.
Every route takes an optional `?shop=` domain (default: the sandbox shop).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from crossdock.connectors.sandbox.faults import FaultPlan
from crossdock.connectors.sandbox.shopify_http import json_response, read_json
from crossdock.connectors.sandbox.shopify_orders import make_catalog, make_order
from crossdock.connectors.sandbox.shopify_state import DEFAULT_SHOP, ShopifyAPIError, ShopifySimulator


class Credentials(BaseModel):
    """Register an access token for a shop, and optionally replace the app's webhook secret."""

    access_token: str = Field(min_length=1, description="Token accepted in X-Shopify-Access-Token.")
    shop_domain: str = Field(DEFAULT_SHOP, description="Shop the token belongs to.")
    app_secret: str | None = Field(None, description="New app client secret used to sign webhooks.")


def control_router(sim: ShopifySimulator) -> APIRouter:
    router = APIRouter(prefix="/_control")

    @router.post("/reset")
    async def reset() -> Response:
        sim.reset()
        return json_response({"reset": True})

    @router.post("/credentials")
    async def credentials(body: Credentials) -> Response:
        sim.register_token(body.access_token, body.shop_domain)
        if body.app_secret:
            sim.app_secret = body.app_secret
        return json_response({"shop_domain": body.shop_domain})

    @router.post("/faults")
    async def set_faults(plan: FaultPlan) -> Response:
        sim.faults.set(plan)
        return json_response(plan.model_dump())

    @router.delete("/faults")
    async def clear_faults() -> Response:
        sim.faults.clear()
        return json_response(FaultPlan().model_dump())

    @router.post("/products")
    async def seed_products(request: Request, shop: str | None = None) -> Response:
        """Body: `{"products": [...]}` or `{"generate": n, "seed": s}`."""
        body = await _control_body(sim, request)
        products = body.get("products") or make_catalog(int(body.get("generate", 0)), seed=int(body.get("seed", 0)))
        return json_response({"seeded": sim.seed_products(products, shop)}, 201)

    @router.post("/orders")
    async def seed_orders(request: Request, shop: str | None = None) -> Response:
        """Body: `{"orders": [...]}` or `{"generate": n, "seed": s}`; `"notify": true` sends orders/create."""
        body = await _control_body(sim, request)
        orders = body.get("orders")
        if orders is None:
            start = int(body.get("seed", 0))
            orders = [make_order(start + i) for i in range(int(body.get("generate", 0)))]
        created = sim.seed_orders(orders, shop, notify=bool(body.get("notify", False)))
        return json_response({"seeded": len(created), "ids": [o["id"] for o in created]}, 201)

    @router.get("/state")
    async def state() -> Response:
        return json_response(sim.counters())

    @router.get("/deliveries")
    async def deliveries(event_id: str | None = None) -> Response:
        attempts = [a.to_dict() for d in sim.sender.deliveries if event_id in (None, d.event_id) for a in d.attempts]
        return json_response({"attempts": attempts})

    return router


async def _control_body(sim: ShopifySimulator, request: Request) -> dict[str, Any]:
    body = await read_json(sim, request)
    if not isinstance(body, dict):
        raise ShopifyAPIError(400, {"errors": "Request body must be a JSON object"})
    return body
