"""ShipStation V1 simulator + client over real HTTP: upsert, paging, limits, SHIP_NOTIFY, errors."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.sandbox.faults import FaultPlan
from crossdock.connectors.sandbox.serve import serve_in_thread
from crossdock.connectors.sandbox.shipstation import create_shipstation_app
from crossdock.connectors.sandbox.shipstation_state import DEFAULT_API_KEY, DEFAULT_API_SECRET, ShipStationSimulator
from crossdock.connectors.sandbox.shopify_limits import ManualClock
from crossdock.connectors.shipstation import ShipStationClient, parse_ship_notify
from crossdock.connectors.shopify import RetryPolicy

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.005)
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{DEFAULT_API_KEY}:{DEFAULT_API_SECRET}".encode()).decode()}


def ss_order(n: int, **overrides: Any) -> dict[str, Any]:
    return {
        "orderNumber": f"#{1000 + n}",
        "orderKey": f"shopify-{5_100_000_000_000 + n}",
        "orderDate": "2025-01-06T09:00:00.0000000",
        "paymentDate": "2025-01-06T09:00:00.0000000",
        "orderStatus": "awaiting_shipment",
        "customerEmail": f"buyer{n}@example.com",
        "billTo": {"name": "Ava Nguyen"},
        "shipTo": {
            "name": "Ava Nguyen",
            "street1": "1600 Main St",
            "city": "Austin",
            "state": "TX",
            "postalCode": "78701",
            "country": "US",
            "residential": True,
        },
        "items": [{"lineItemKey": f"li-{n}", "sku": f"CD-{n:05d}-M", "name": "Tee", "quantity": 2, "unitPrice": 14.5}],
        "amountPaid": 36.94,
        "taxAmount": 2.39,
        "shippingAmount": 5.55,
        **overrides,
    }


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ShipStationSimulator, str]]:
    sim = ShipStationSimulator(rate_limit=100_000, max_body_bytes=128 * 1024)
    root = Starlette(routes=[Mount("/shipstation", app=create_shipstation_app(sim))])
    with serve_in_thread(root) as srv:
        yield sim, f"{srv.url}/shipstation"


@pytest.fixture
def sim(server: tuple[ShipStationSimulator, str]) -> ShipStationSimulator:
    server[0].reset()
    return server[0]


@pytest.fixture
def base_url(server: tuple[ShipStationSimulator, str], sim: ShipStationSimulator) -> str:
    return server[1]


def client(base_url: str, key: str = DEFAULT_API_KEY, secret: str = DEFAULT_API_SECRET, **kw: Any) -> ShipStationClient:
    return ShipStationClient(key, secret, base_url=base_url, retry=kw.pop("retry", FAST_RETRY), **kw)


async def expect_error(coro: Any) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        await coro
    return info.value


async def test_bad_credentials_are_auth(base_url: str) -> None:
    async with client(base_url, secret="wrong") as ss:
        err = await expect_error(ss.get_order(1))
    assert (err.kind, err.category, err.status) == (FailureKind.AUTH, FailureCategory.AUTH, 401)
    async with httpx.AsyncClient() as http:
        raw = await http.get(f"{base_url}/orders")
    assert (raw.status_code, raw.json()) == (401, {"Message": "Authorization has been denied for this request."})


async def test_createorder_twice_with_same_order_key_is_one_order_fully_replaced(
    sim: ShipStationSimulator, base_url: str
) -> None:
    # given an order created once with customer notes
    async with client(base_url) as ss:
        first = await ss.create_or_update_order(ss_order(1, customerNotes="leave at door"))
        # when the same orderKey is sent again without notes and with a new quantity
        changed = ss_order(1)
        changed["items"][0]["quantity"] = 3
        second = await ss.create_or_update_order(changed)
        listed = [o async for o in ss.list_orders()]
    # then there is still one order, same id, fully replaced (notes gone, quantity 3)
    assert second["orderId"] == first["orderId"]
    assert len(listed) == 1
    assert (listed[0]["customerNotes"], listed[0]["items"][0]["quantity"]) == (None, 3)
    assert listed[0]["shipTo"]["addressVerified"] == "Address validated successfully"
    assert listed[0]["orderTotal"] == 51.44


async def test_shipped_order_cannot_be_updated(sim: ShipStationSimulator, base_url: str) -> None:
    async with client(base_url) as ss:
        order = await ss.create_or_update_order(ss_order(2))
        sim.ship(order["orderId"])
        err = await expect_error(ss.create_or_update_order(ss_order(2)))
    assert (err.kind, err.category, err.status, err.vendor_code) == (
        FailureKind.DATA,
        FailureCategory.FULFILLMENT_STATE,
        400,
        "order_not_updatable",
    )
    assert "status is 'shipped'" in err.message
    assert sim.order(order["orderId"])["orderStatus"] == "shipped"


async def test_validation_failures_are_classified(sim: ShipStationSimulator, base_url: str) -> None:
    async with client(base_url) as ss:
        missing = await expect_error(ss.create_or_update_order({**ss_order(3), "orderNumber": None}))
        too_long = await expect_error(ss.create_or_update_order(ss_order(3, orderNumber="N" * 51)))
        no_key = await expect_error(ss.create_or_update_order({**ss_order(3), "orderKey": ""}))
        huge = await expect_error(ss.create_or_update_order(ss_order(3, internalNotes="x" * 200_000)))
        unknown = await expect_error(ss.get_order(999))
    assert (missing.category, missing.status) == (FailureCategory.VALIDATION, 400)
    assert missing.details["errors"]["ModelState"] == {"apiOrder.orderNumber": ["The orderNumber field is required."]}
    assert "maximum length of 50" in too_long.message
    assert (no_key.category, no_key.status) == (FailureCategory.VALIDATION, None)
    assert (huge.category, huge.status) == (FailureCategory.VALIDATION, 413)
    assert (unknown.category, unknown.status) == (FailureCategory.NOT_FOUND, 404)
    assert sim.counters()["orders"] == 0
    async with httpx.AsyncClient(headers=BASIC) as http:
        malformed = await http.post(
            f"{base_url}/orders/createorder", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        batch = await http.post(f"{base_url}/orders/createorders", json=[ss_order(i) for i in range(101)])
    assert malformed.status_code == 400 and malformed.json()["Message"] == "The request is invalid."
    assert batch.status_code == 400 and "maximum of 100" in str(batch.json()["ModelState"])


async def test_bulk_create_and_pagination_over_1050_orders(sim: ShipStationSimulator, base_url: str) -> None:
    # given 1,050 orders sent in batches of 100 (and 50 of them sent twice)
    orders = [ss_order(i) for i in range(1050)]
    async with client(base_url) as ss:
        results = await ss.create_orders(orders)
        again = await ss.create_orders(orders[:50])
        # when they are listed 100 per page
        listed = [o["orderKey"] async for o in _pages(ss, 100)]
    # then each appears exactly once
    assert len(results) == 1050 and all(r["success"] for r in results)
    assert [r["orderId"] for r in again] == [r["orderId"] for r in results[:50]]
    assert len(listed) == 1050
    assert set(listed) == {o["orderKey"] for o in orders}
    assert sim.counters()["orders"] == 1050


async def _pages(ss: ShipStationClient, size: int) -> Any:
    async for order in ss.list_orders(page_size=size):
        yield order


class Hook:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def endpoint(self, request: Request) -> Response:
        self.bodies.append(await request.body())
        return Response(status_code=200)


async def test_ship_sends_unsigned_ship_notify_and_resource_url_lists_the_shipment(
    sim: ShipStationSimulator, base_url: str
) -> None:
    hook = Hook()
    with serve_in_thread(
        Starlette(routes=[Route("/hooks/shipstation/s3cr3t-token", hook.endpoint, methods=["POST"])])
    ) as receiver:
        async with client(base_url) as ss:
            # given an order and a SHIP_NOTIFY subscription
            order = await ss.create_or_update_order(ss_order(7))
            hook_id = await ss.subscribe_webhook(f"{receiver.url}/hooks/shipstation/s3cr3t-token", "SHIP_NOTIFY")
            # when the order ships
            async with httpx.AsyncClient() as http:
                shipped = await http.post(
                    f"{base_url}/_control/orders/{order['orderId']}/ship",
                    json={"carrierCode": "ups", "trackingNumber": "1Z999AA10123456784"},
                )
            # then the subscriber got only a resource URL, which lists the shipment
            [body] = hook.bodies
            resource_url, resource_type = parse_ship_notify(body, allowed_base_url=base_url)
            shipments = await ss.get_shipments(resource_url)
    assert hook_id > 0
    assert shipped.json()["deliveries"] == [
        {"target_url": f"{receiver.url}/hooks/shipstation/s3cr3t-token", "status": 200, "error": None}
    ]
    assert resource_type == "SHIP_NOTIFY"
    assert resource_url.startswith(f"{base_url}/shipments?batchId=")
    assert [(s["orderKey"], s["trackingNumber"], s["carrierCode"]) for s in shipments] == [
        (ss_order(7)["orderKey"], "1Z999AA10123456784", "ups")
    ]
    assert shipments[0]["shipTo"]["addressVerified"] == "Address validated successfully"


@pytest.mark.parametrize(
    ("body", "code", "kind"),
    [
        (b"{", "malformed_json", FailureKind.DATA),
        (b"[]", "invalid_shape", FailureKind.DATA),
        (b'{"resource_type": "SHIP_NOTIFY"}', "missing_resource_url", FailureKind.DATA),
        (
            b'{"resource_url": "https://ssapi.shipstation.com/shipments?batchId=1", "resource_type": "NOPE"}',
            "unknown_resource_type",
            FailureKind.DATA,
        ),
        (b'{"resource_url": "/shipments", "resource_type": "SHIP_NOTIFY"}', "invalid_resource_url", FailureKind.DATA),
        (
            b'{"resource_url": "https://evil.example/shipments?x=1", "resource_type": "SHIP_NOTIFY"}',
            "foreign_resource_url",
            FailureKind.AUTH,
        ),
        (b'{"resource_url": "' + b"x" * 70_000 + b'"}', "payload_too_large", FailureKind.DATA),
    ],
)
def test_bad_ship_notify_bodies_are_classified(body: bytes, code: str, kind: FailureKind) -> None:
    with pytest.raises(ConnectorError) as info:
        parse_ship_notify(body, allowed_base_url="https://ssapi.shipstation.com")
    assert (info.value.kind, info.value.vendor_code) == (kind, code)


def test_valid_ship_notify_from_real_host() -> None:
    body = b'{"resource_url": "https://ssapi.shipstation.com/shipments?storeID=1&batchId=99&includeShipmentItems=False", "resource_type": "SHIP_NOTIFY"}'
    note = parse_ship_notify(body, allowed_base_url="https://ssapi.shipstation.com")
    assert note.resource_type == "SHIP_NOTIFY" and "batchId=99" in note.resource_url


async def test_transient_faults_retry_then_classify(sim: ShipStationSimulator, base_url: str) -> None:
    async with client(base_url) as ss:
        sim.faults.set(FaultPlan(error_rate=1.0, error_status=502))
        server_error = await expect_error(ss.get_order(1))
        sim.faults.set(FaultPlan(throttle_burst=2))
        sim.faults.injected.clear()
        order = await ss.create_or_update_order(ss_order(8))
        sim.faults.set(FaultPlan(throttle_burst=5))
        throttled = await expect_error(ss.get_order(order["orderId"]))
    assert (server_error.kind, server_error.category, server_error.status) == (
        FailureKind.TRANSIENT,
        FailureCategory.CONNECTION,
        502,
    )
    assert order["orderKey"] == ss_order(8)["orderKey"]
    assert (throttled.kind, throttled.category, throttled.status) == (
        FailureKind.TRANSIENT,
        FailureCategory.RATE_LIMIT,
        429,
    )
    assert sim.faults.injected["throttle"] == 2 + FAST_RETRY.max_attempts


# ----- rate limit ------------------------------------------------------------------------------
@pytest.fixture
def limited() -> Iterator[tuple[ShipStationSimulator, ManualClock, str]]:
    clock = ManualClock()
    sim = ShipStationSimulator(clock=clock)
    with serve_in_thread(create_shipstation_app(sim)) as srv:
        yield sim, clock, srv.url


async def test_rate_limit_headers_are_exact(limited: tuple[ShipStationSimulator, ManualClock, str]) -> None:
    sim, clock, url = limited
    async with httpx.AsyncClient(base_url=url, headers=BASIC) as http:
        first = await http.get("/orders")
        clock.advance(15)
        for _ in range(39):
            last_ok = await http.get("/orders")
        refused = await http.get("/orders")
        clock.advance(45)
        fresh = await http.get("/orders")
    rate = ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset")
    assert [first.headers[h] for h in rate] == ["40", "39", "60"]
    assert [last_ok.headers[h] for h in rate] == ["40", "0", "45"]
    assert refused.status_code == 429
    assert [refused.headers[h] for h in rate] == ["40", "0", "45"]
    assert (fresh.status_code, fresh.headers["X-Rate-Limit-Remaining"], fresh.headers["X-Rate-Limit-Reset"]) == (
        200,
        "39",
        "60",
    )
    assert sim.counters()["throttled"] == 1


async def test_sustained_concurrent_load_never_exceeds_40_per_window(
    limited: tuple[ShipStationSimulator, ManualClock, str],
) -> None:
    # given a client whose sleeps move the simulator's clock
    sim, clock, url = limited
    order = sim.upsert_order(ss_order(1))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    async with client(url, sleep=sleep, clock=clock, retry=RetryPolicy(max_attempts=5, max_retry_after_s=90)) as ss:
        # when 10 workers make 200 calls
        async def worker() -> int:
            for _ in range(20):
                await ss.get_order(order["orderId"])
            return 20

        done = await asyncio.gather(*(worker() for _ in range(10)))
    # then all complete and no window ever admitted more than 40
    counters = sim.counters()
    assert sum(done) == 200
    assert counters["accepted"] == 200
    assert 30 <= counters["max_in_window"] <= 40
    assert counters["throttled"] == 0  # the client waits for the reset instead of hammering
    assert clock.now - 1_000.0 >= 4 * 60  # 200 calls need at least 5 windows
