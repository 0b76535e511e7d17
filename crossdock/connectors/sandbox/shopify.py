"""Shopify Admin API simulator: REST resources, GraphQL, cursor pagination and both throttles.

`create_shopify_app()` returns a FastAPI app that can run alone or be mounted (for example under
`/shopify` in the combined sandbox server); every link it emits is built from the request URL,
so it carries the mount prefix. Paths follow `/admin/api/{version}/...json`, auth is the
`X-Shopify-Access-Token` header, and the control API lives under `/_control` (see
`shopify_control`). Faults come from the simulator's `FaultPlan` via `FaultMiddleware`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError

from crossdock.connectors.sandbox.faults import FaultMiddleware
from crossdock.connectors.sandbox.shopify_control import control_router
from crossdock.connectors.sandbox.shopify_delivery import WEBHOOK_TOPICS
from crossdock.connectors.sandbox.shopify_fulfillment import create_fulfillment, create_refund, payouts
from crossdock.connectors.sandbox.shopify_graphql import execute
from crossdock.connectors.sandbox.shopify_http import (
    RestCall,
    admit,
    authenticate,
    int_list,
    int_param,
    json_response,
    paginate,
    read_json,
)
from crossdock.connectors.sandbox.shopify_state import NOT_FOUND, ShopifyAPIError, ShopifySimulator, blank

API = "/admin/api/{version}"
_ORDER_FILTERS = (
    "status",
    "financial_status",
    "since_id",
    "ids",
    "created_at_min",
    "created_at_max",
    "updated_at_min",
    "updated_at_max",
)


def _time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ShopifyAPIError(400, {"errors": {"updated_at_min": "Invalid date"}}) from None


def _order_matches(order: Mapping[str, Any], f: Mapping[str, str]) -> bool:
    status = f.get("status", "open")
    if status == "open" and (order.get("closed_at") or order.get("cancelled_at")):
        return False
    if status == "closed" and not order.get("closed_at"):
        return False
    if status == "cancelled" and not order.get("cancelled_at"):
        return False
    if (
        "financial_status" in f
        and f["financial_status"] != "any"
        and order["financial_status"] != f["financial_status"]
    ):
        return False
    if "since_id" in f and order["id"] <= int(f["since_id"]):
        return False
    if "ids" in f and str(order["id"]) not in f["ids"].split(","):
        return False
    for name, field, newer in (
        ("created_at_min", "created_at", True),
        ("created_at_max", "created_at", False),
        ("updated_at_min", "updated_at", True),
        ("updated_at_max", "updated_at", False),
    ):
        if name in f:
            at, bound = _time(order[field]), _time(f[name])
            if (newer and at < bound) or (not newer and at > bound):
                return False
    return True


def _product_matches(product: Mapping[str, Any], f: Mapping[str, str]) -> bool:
    if "since_id" in f and product["id"] <= int(f["since_id"]):
        return False
    return "ids" not in f or str(product["id"]) in f["ids"].split(",")


def _rest_call(request: Request) -> RestCall:
    sim: ShopifySimulator = request.app.state.sim
    return admit(sim, request)


# Module level so FastAPI can resolve the annotation (this module uses postponed annotations).
Call = Annotated[RestCall, Depends(_rest_call)]


def create_shopify_app(state: ShopifySimulator | None = None) -> FastAPI:
    """The simulator app; `app.state.sim` is the `ShopifySimulator` it serves."""
    sim = state or ShopifySimulator()
    app = FastAPI(title="Shopify Admin API simulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = sim
    app.add_middleware(FaultMiddleware, state=sim.faults, throttle_headers={"Retry-After": "2.0"})

    @app.exception_handler(ShopifyAPIError)
    async def _shopify_error(request: Request, exc: ShopifyAPIError) -> Response:
        headers = {**getattr(request.state, "shopify_headers", {}), **exc.headers}
        return json_response(exc.body, exc.status, headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_path(request: Request, exc: RequestValidationError) -> Response:
        return json_response(NOT_FOUND, 404, getattr(request.state, "shopify_headers", {}))

    # ----- orders ------------------------------------------------------------------------------
    @app.get(API + "/orders.json")
    async def list_orders(request: Request, call: Call) -> Response:
        int_param(request.query_params.get("since_id"), "since_id")
        with call.store.lock:
            records = sorted(call.store.orders.values(), key=lambda o: o["id"])
        return paginate(request, call, "orders", records, _ORDER_FILTERS, _order_matches)

    @app.get(API + "/orders/count.json")
    async def count_orders(request: Request, call: Call) -> Response:
        filters = {k: v for k in _ORDER_FILTERS if (v := request.query_params.get(k))}
        with call.store.lock:
            count = sum(1 for o in call.store.orders.values() if _order_matches(o, filters))
        return call.ok({"count": count})

    @app.get(API + "/orders/{order_id}.json")
    async def get_order(order_id: int, call: Call) -> Response:
        return call.ok({"order": call.store.order(order_id)})

    @app.put(API + "/orders/{order_id}.json")
    async def update_order(order_id: int, request: Request, call: Call) -> Response:
        changes = await read_json(sim, request, "order")
        order = call.store.update_order(order_id, changes)
        sim.notify(call.store, "orders/updated", order)
        return call.ok({"order": order})

    @app.post(API + "/orders/{order_id}/cancel.json")
    async def cancel_order(order_id: int, request: Request, call: Call) -> Response:
        body = await read_json(sim, request) or {}
        order = call.store.cancel_order(
            order_id, str(body.get("reason") or "other") if isinstance(body, dict) else "other"
        )
        sim.notify(call.store, "orders/cancelled", order)
        return call.ok({"order": order})

    @app.get(API + "/orders/{order_id}/fulfillment_orders.json")
    async def fulfillment_orders(order_id: int, call: Call) -> Response:
        return call.ok({"fulfillment_orders": call.store.fulfillment_orders_for(order_id)})

    @app.post(API + "/fulfillments.json")
    async def fulfill(request: Request, call: Call) -> Response:
        fulfillment = create_fulfillment(call.store, await read_json(sim, request, "fulfillment"))
        sim.notify(call.store, "fulfillments/create", fulfillment)
        return call.ok({"fulfillment": fulfillment}, 201)

    @app.post(API + "/orders/{order_id}/refunds.json")
    async def refund(order_id: int, request: Request, call: Call) -> Response:
        created = create_refund(call.store, order_id, await read_json(sim, request, "refund"))
        sim.notify(call.store, "refunds/create", created)
        return call.ok({"refund": created}, 201)

    # ----- catalog and inventory ---------------------------------------------------------------
    @app.get(API + "/products.json")
    async def list_products(request: Request, call: Call) -> Response:
        int_param(request.query_params.get("since_id"), "since_id")
        with call.store.lock:
            records = sorted(call.store.products.values(), key=lambda p: p["id"])
        return paginate(request, call, "products", records, ("since_id", "ids"), _product_matches)

    @app.get(API + "/products/{product_id}.json")
    async def get_product(product_id: int, call: Call) -> Response:
        with call.store.lock:
            product = call.store.products.get(product_id)
        if product is None:
            raise ShopifyAPIError(404, NOT_FOUND)
        return call.ok({"product": product})

    @app.get(API + "/variants/{variant_id}.json")
    async def get_variant(variant_id: int, call: Call) -> Response:
        return call.ok({"variant": call.store.variant(variant_id)})

    @app.put(API + "/variants/{variant_id}.json")
    async def update_variant(variant_id: int, request: Request, call: Call) -> Response:
        variant = call.store.update_variant(variant_id, await read_json(sim, request, "variant"))
        with call.store.lock:
            product = dict(call.store.products[variant["product_id"]])
        sim.notify(call.store, "products/update", product)
        return call.ok({"variant": variant})

    @app.get(API + "/inventory_levels.json")
    async def inventory_levels(request: Request, call: Call) -> Response:
        items = int_list(request.query_params.get("inventory_item_ids"), "inventory_item_ids")
        locations = int_list(request.query_params.get("location_ids"), "location_ids")
        if items is None and locations is None:
            raise ShopifyAPIError(
                422, {"errors": {"base": ["must specify at least one of inventory_item_ids or location_ids"]}}
            )
        return call.ok({"inventory_levels": call.store.inventory_levels(items, locations)})

    @app.post(API + "/inventory_levels/set.json")
    async def set_level(request: Request, call: Call) -> Response:
        body = await _object(request)
        missing = [f for f in ("inventory_item_id", "location_id", "available") if body.get(f) is None]
        if missing:
            raise blank(*missing)
        level = call.store.set_inventory(
            _int(body, "inventory_item_id"), _int(body, "location_id"), _int(body, "available")
        )
        sim.notify(call.store, "inventory_levels/update", level)
        return call.ok({"inventory_level": level})

    @app.post(API + "/inventory_levels/adjust.json")
    async def adjust_level(request: Request, call: Call) -> Response:
        body = await _object(request)
        missing = [f for f in ("inventory_item_id", "location_id", "available_adjustment") if body.get(f) is None]
        if missing:
            raise blank(*missing)
        level = call.store.adjust_inventory(
            _int(body, "inventory_item_id"), _int(body, "location_id"), _int(body, "available_adjustment")
        )
        sim.notify(call.store, "inventory_levels/update", level)
        return call.ok({"inventory_level": level})

    @app.get(API + "/shopify_payments/payouts.json")
    async def list_payouts(call: Call) -> Response:
        return call.ok({"payouts": payouts(call.store)})

    # ----- webhook subscriptions ----------------------------------------------------------------
    @app.post(API + "/webhooks.json")
    async def subscribe(request: Request, call: Call) -> Response:
        body = await read_json(sim, request, "webhook")
        missing = [f for f in ("topic", "address") if not body.get(f)]
        if missing:
            raise blank(*missing)
        if body["topic"] not in WEBHOOK_TOPICS:
            raise ShopifyAPIError(422, {"errors": {"topic": ["Invalid topic specified."]}})
        return call.ok(
            {"webhook": call.store.add_webhook(body["topic"], body["address"], body.get("format", "json"))}, 201
        )

    @app.get(API + "/webhooks.json")
    async def list_webhooks(call: Call) -> Response:
        with call.store.lock:
            hooks = sorted(call.store.webhooks.values(), key=lambda w: w["id"])
        return call.ok({"webhooks": hooks})

    @app.delete(API + "/webhooks/{webhook_id}.json")
    async def unsubscribe(webhook_id: int, call: Call) -> Response:
        with call.store.lock:
            if call.store.webhooks.pop(webhook_id, None) is None:
                raise ShopifyAPIError(404, NOT_FOUND)
        return call.ok({})

    # ----- GraphQL ------------------------------------------------------------------------------
    @app.post(API + "/graphql.json")
    async def graphql(request: Request) -> Response:
        store = authenticate(sim, request)
        return json_response(execute(store, await read_json(sim, request)))

    async def _object(request: Request) -> dict[str, Any]:
        body = await read_json(sim, request)
        if not isinstance(body, dict):
            raise ShopifyAPIError(400, {"errors": "Request body must be a JSON object"})
        return body

    app.include_router(control_router(sim))

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    async def _unknown(path: str) -> Response:
        return json_response(NOT_FOUND, 404)

    return app


def _int(body: Mapping[str, Any], name: str) -> int:
    try:
        return int(body[name])
    except (TypeError, ValueError):
        raise ShopifyAPIError(422, {"errors": {name: ["is not a number"]}}) from None
