"""ShipStation V1 API simulator: Basic auth, 40 req/min windows, orderKey upsert, shipments, SHIP_NOTIFY.

`create_shipstation_app()` can run alone or be mounted (e.g. under `/shipstation`); the SHIP_NOTIFY
`resource_url` is built from the request's base URL so it carries the mount prefix. The control
API (`/_control/...`) seeds and ships orders, sets faults and reads counters.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from crossdock.connectors.sandbox.faults import FaultMiddleware, FaultPlan
from crossdock.connectors.sandbox.shipstation_state import (
    WEBHOOK_EVENTS,
    ShipStationAPIError,
    ShipStationSimulator,
    invalid,
)

DENIED = {"Message": "Authorization has been denied for this request."}
MAX_BATCH = 100


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


class Call:
    """An authenticated, admitted call and the rate headers every response carries."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def ok(self, body: Any, status: int = 200) -> Response:
        return _json(body, status, self.headers)


def _admit(request: Request) -> Call:
    sim: ShipStationSimulator = request.app.state.sim
    try:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key, _, secret = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ShipStationAPIError(401, DENIED) from None
    if scheme.lower() != "basic" or (key, secret) not in sim.credentials:
        raise ShipStationAPIError(401, DENIED)
    decision = sim.admit(key)
    request.state.rate_headers = decision.headers
    if not decision.allowed:
        raise ShipStationAPIError(429, {"Message": "Too Many Requests"}, decision.headers)
    return Call(decision.headers)


Admitted = Annotated[Call, Depends(_admit)]


async def _body(request: Request) -> Any:
    sim: ShipStationSimulator = request.app.state.sim
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > sim.max_body_bytes:
        raise ShipStationAPIError(413, {"Message": "The request is too large."})
    raw = await request.body()
    if len(raw) > sim.max_body_bytes:
        raise ShipStationAPIError(413, {"Message": "The request is too large."})
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ShipStationAPIError(
            400,
            {
                "Message": "The request is invalid.",
                "ModelState": {"apiOrder": ["An error has occurred while parsing the JSON body."]},
            },
        ) from None


def _page(items: list[dict[str, Any]], request: Request, key: str) -> dict[str, Any]:
    q = request.query_params
    try:
        page = max(1, int(q.get("page") or 1))
        size = min(500, max(1, int(q.get("pageSize") or 100)))
    except ValueError:
        raise invalid({"page": ["The value is not valid."]}) from None
    return {
        key: items[(page - 1) * size : page * size],
        "total": len(items),
        "page": page,
        "pages": math.ceil(len(items) / size),
    }


class ShipAction(BaseModel):
    carrierCode: str = Field("ups", description="Carrier of the label.")
    trackingNumber: str | None = Field(None, description="Tracking number; generated when omitted.")
    notify: bool = Field(True, description="Send SHIP_NOTIFY to subscribers and wait for the deliveries.")


def create_shipstation_app(state: ShipStationSimulator | None = None) -> FastAPI:
    """The simulator app; `app.state.sim` is the `ShipStationSimulator` it serves."""
    sim = state or ShipStationSimulator()
    app = FastAPI(title="ShipStation V1 simulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = sim
    app.add_middleware(FaultMiddleware, state=sim.faults)

    @app.exception_handler(ShipStationAPIError)
    async def _error(request: Request, exc: ShipStationAPIError) -> Response:
        return _json(exc.body, exc.status, {**getattr(request.state, "rate_headers", {}), **exc.headers})

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        return _json({"Message": "The request is invalid."}, 400, getattr(request.state, "rate_headers", {}))

    @app.post("/orders/createorder")
    async def create_order(request: Request, call: Admitted) -> Response:
        body = await _body(request)
        if not isinstance(body, dict):
            raise invalid({"apiOrder": ["The order must be a JSON object."]})
        return call.ok(sim.upsert_order(body))

    @app.post("/orders/createorders")
    async def create_orders(request: Request, call: Admitted) -> Response:
        body = await _body(request)
        if not isinstance(body, list):
            raise invalid({"apiOrders": ["A JSON array of orders is required."]})
        if len(body) > MAX_BATCH:
            raise invalid({"apiOrders": [f"A maximum of {MAX_BATCH} orders can be created at once."]})
        results = []
        for item in body:
            try:
                order = sim.upsert_order(item if isinstance(item, dict) else {})
                results.append(
                    {
                        "orderId": order["orderId"],
                        "orderNumber": order["orderNumber"],
                        "orderKey": order["orderKey"],
                        "success": True,
                        "errorMessage": None,
                    }
                )
            except ShipStationAPIError as exc:
                results.append(
                    {
                        "orderId": 0,
                        "orderNumber": (item or {}).get("orderNumber") if isinstance(item, dict) else None,
                        "orderKey": (item or {}).get("orderKey") if isinstance(item, dict) else None,
                        "success": False,
                        "errorMessage": orjson.dumps(exc.body).decode(),
                    }
                )
        return call.ok({"hasErrors": not all(r["success"] for r in results), "results": results})

    @app.get("/orders")
    async def list_orders(request: Request, call: Admitted) -> Response:
        q = request.query_params
        with sim.lock:
            orders = [
                o
                for _, o in sorted(sim.orders.items())
                if (not q.get("orderStatus") or o["orderStatus"] == q["orderStatus"])
                and (not q.get("orderNumber") or o["orderNumber"].startswith(q["orderNumber"]))
            ]
        return call.ok(_page(orders, request, "orders"))

    @app.get("/orders/{order_id}")
    async def get_order(order_id: int, call: Admitted) -> Response:
        return call.ok(sim.order(order_id))

    @app.get("/shipments")
    async def list_shipments(request: Request, call: Admitted) -> Response:
        q = request.query_params
        with sim.lock:
            shipments = [
                dict(s)
                for _, s in sorted(sim.shipments.items())
                if (not q.get("batchId") or s["batchNumber"] == q["batchId"])
                and (not q.get("orderId") or str(s["orderId"]) == q["orderId"])
                and (not q.get("orderNumber") or s["orderNumber"] == q["orderNumber"])
            ]
        if (q.get("includeShipmentItems") or "false").lower() != "true":
            for s in shipments:
                s["shipmentItems"] = None
        return call.ok(_page(shipments, request, "shipments"))

    @app.post("/webhooks/subscribe")
    async def subscribe(request: Request, call: Admitted) -> Response:
        body = await _body(request)
        if not isinstance(body, dict) or not body.get("target_url") or body.get("event") not in WEBHOOK_EVENTS:
            raise invalid({"webhook": ["target_url and a valid event are required."]})
        hook_id = sim.subscribe(body["target_url"], body["event"], body.get("store_id"), body.get("friendly_name"))
        return call.ok({"WebHookID": hook_id}, 201)

    @app.get("/webhooks")
    async def list_webhooks(call: Admitted) -> Response:
        with sim.lock:
            return call.ok({"webhooks": list(sim.webhooks.values())})

    @app.delete("/webhooks/{hook_id}")
    async def unsubscribe(hook_id: int, call: Admitted) -> Response:
        with sim.lock:
            if sim.webhooks.pop(hook_id, None) is None:
                raise ShipStationAPIError(404, {"Message": f"Webhook {hook_id} was not found."})
        return call.ok(None)

    # ----- control API (not part of ShipStation's contract) ------------------------------------
    @app.post("/_control/reset")
    async def reset() -> Response:
        sim.reset()
        return _json({"reset": True})

    @app.post("/_control/faults")
    async def set_faults(plan: FaultPlan) -> Response:
        sim.faults.set(plan)
        return _json(plan.model_dump())

    @app.delete("/_control/faults")
    async def clear_faults() -> Response:
        sim.faults.clear()
        return _json(FaultPlan().model_dump())

    @app.post("/_control/orders/{order_id}/ship")
    async def ship(order_id: int, action: ShipAction, request: Request) -> Response:
        shipment = sim.ship(order_id, carrier_code=action.carrierCode, tracking_number=action.trackingNumber)
        # root_path carries the mount prefix (request.base_url is the outermost app's root).
        resource_url = str(
            request.url.replace(
                path=f"{request.scope.get('root_path', '')}/shipments",
                query=f"batchId={shipment['batchNumber']}&includeShipmentItems=False",
            )
        )
        attempts = await sim.send_ship_notify(resource_url) if action.notify else []
        return _json(
            {
                "shipment": shipment,
                "resource_url": resource_url,
                "deliveries": [{"target_url": a.target_url, "status": a.status, "error": a.error} for a in attempts],
            },
            201,
        )

    @app.get("/_control/state")
    async def counters() -> Response:
        return _json(sim.counters())

    return app
