"""Shopify simulator + client over real HTTP: auth, pagination, writes, fulfillment, error classes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Mount, Route

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.sandbox.faults import FaultPlan
from crossdock.connectors.sandbox.serve import serve_in_thread
from crossdock.connectors.sandbox.shopify import create_shopify_app
from crossdock.connectors.sandbox.shopify_orders import DEFAULT_LOCATION_ID, make_catalog, make_order
from crossdock.connectors.sandbox.shopify_state import DEFAULT_TOKEN, ShopifySimulator
from crossdock.connectors.shopify import RetryPolicy, ShopifyClient

FAST_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.005)
API = "/admin/api/2025-07"
AUTH = {"X-Shopify-Access-Token": DEFAULT_TOKEN}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ShopifySimulator, str]]:
    # A fast leak keeps these functional tests clear of the throttle; throttling has its own file.
    sim = ShopifySimulator(rest_leak_rate=10_000.0, max_body_bytes=256 * 1024)
    root = Starlette(routes=[Mount("/shopify", app=create_shopify_app(sim))])
    with serve_in_thread(root) as srv:
        yield sim, f"{srv.url}/shopify"


@pytest.fixture
def sim(server: tuple[ShopifySimulator, str]) -> ShopifySimulator:
    server[0].reset()
    return server[0]


@pytest.fixture
def shop_url(server: tuple[ShopifySimulator, str], sim: ShopifySimulator) -> str:
    return server[1]


def client(shop_url: str, token: str = DEFAULT_TOKEN, **kw: object) -> ShopifyClient:
    return ShopifyClient(shop_url, token, retry=FAST_RETRY, rest_leak_rate=10_000.0, **kw)  # type: ignore[arg-type]


async def expect_error(coro: object) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        await coro  # type: ignore[misc]
    return info.value


# ----- auth ------------------------------------------------------------------------------------
async def test_wrong_token_is_classified_auth_and_not_retried(sim: ShopifySimulator, shop_url: str) -> None:
    # given an order and a client with a wrong token
    sim.seed_orders([make_order(1)])
    async with client(shop_url, "shpat_wrong") as shop:
        # when it reads the order
        err = await expect_error(shop.get_order(make_order(1)["id"]))
    # then the failure is AUTH, with Shopify's status, and no call reached the bucket
    assert (err.kind, err.category, err.status) == (FailureKind.AUTH, FailureCategory.AUTH, 401)
    assert "Invalid API key or access token" in err.message
    assert sim.counters()["shops"]["crossdock-sandbox.myshopify.com"]["rest"]["accepted"] == 0


async def test_missing_token_gets_shopify_401_body(shop_url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{shop_url}{API}/orders.json")
    assert response.status_code == 401
    assert response.json() == {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


# ----- pagination ------------------------------------------------------------------------------
async def test_list_orders_follows_links_over_1234_orders_without_duplicates(
    sim: ShopifySimulator, shop_url: str
) -> None:
    # given 1,234 orders
    sim.seed_orders(make_order(i) for i in range(1234))
    # when the client lists them 250 at a time
    async with client(shop_url) as shop:
        ids = [o["id"] async for o in shop.list_orders(limit=250, fields=["id", "name"])]
    # then every order comes back exactly once, in id order, over 5 pages
    assert len(ids) == 1234
    assert len(set(ids)) == 1234
    assert ids == sorted(make_order(i)["id"] for i in range(1234))
    assert sim.counters()["shops"]["crossdock-sandbox.myshopify.com"]["rest"]["accepted"] == 5


async def test_link_headers_carry_mount_prefix_and_previous_returns_prior_page(
    sim: ShopifySimulator, shop_url: str
) -> None:
    sim.seed_orders(make_order(i) for i in range(7))
    async with httpx.AsyncClient(headers=AUTH) as http:
        first = await http.get(f"{shop_url}{API}/orders.json", params={"limit": 3})
        assert 'rel="previous"' not in first.headers["link"]
        next_url = first.headers["link"].split(";")[0].strip("<>")
        assert next_url.startswith(f"{shop_url}{API}/orders.json?limit=3&page_info=")
        second = await http.get(next_url)
        links = dict(
            (part.split(";")[1].strip(), part.split(";")[0].strip(" <>")) for part in second.headers["link"].split(",")
        )
        back = await http.get(links['rel="previous"'])
        third = await http.get(links['rel="next"'])
    assert [o["id"] for o in back.json()["orders"]] == [o["id"] for o in first.json()["orders"]]
    assert [o["name"] for o in second.json()["orders"]] == ["#1004", "#1005", "#1006"]
    assert [o["name"] for o in third.json()["orders"]] == ["#1007"]
    assert "link" not in third.headers or 'rel="next"' not in third.headers["link"]


async def test_single_page_has_no_link_header(sim: ShopifySimulator, shop_url: str) -> None:
    sim.seed_orders(make_order(i) for i in range(3))
    async with httpx.AsyncClient(headers=AUTH) as http:
        response = await http.get(f"{shop_url}{API}/orders.json")
    assert len(response.json()["orders"]) == 3
    assert "link" not in response.headers


async def test_page_info_with_other_filters_is_a_400_and_classified_validation(
    sim: ShopifySimulator, shop_url: str
) -> None:
    sim.seed_orders(make_order(i) for i in range(4))
    async with httpx.AsyncClient(headers=AUTH) as http:
        first = await http.get(f"{shop_url}{API}/orders.json", params={"limit": 2, "status": "any"})
    next_url = first.headers["link"].split(";")[0].strip("<>")
    async with client(shop_url) as shop:
        err = await expect_error(shop._rest("GET", next_url + "&status=open"))
    assert (err.kind, err.category, err.status) == (FailureKind.DATA, FailureCategory.VALIDATION, 400)
    assert "page_info" in err.message


async def test_filters_since_id_updated_at_min_and_status(sim: ShopifySimulator, shop_url: str) -> None:
    orders = [make_order(i) for i in range(10)]
    orders[9]["cancelled_at"] = "2025-01-07T00:00:00-00:00"
    sim.seed_orders(orders)
    async with client(shop_url) as shop:
        after_5 = [o["name"] async for o in shop.list_orders(since_id=orders[5]["id"])]
        updated = [o["name"] async for o in shop.list_orders(updated_at_min=orders[8]["updated_at"])]
        open_only = [o["name"] async for o in shop.list_orders(status="open")]
    assert after_5 == ["#1007", "#1008", "#1009", "#1010"]
    assert updated == ["#1009", "#1010"]
    assert len(open_only) == 9 and "#1010" not in open_only


# ----- writes ----------------------------------------------------------------------------------
async def test_update_order_writes_back_erp_number(sim: ShopifySimulator, shop_url: str) -> None:
    order = make_order(3)
    sim.seed_orders([order])
    async with client(shop_url) as shop:
        await shop.update_order(
            order["id"], {"note_attributes": [{"name": "erp_order", "value": "SO-1042"}], "tags": ["erp-synced"]}
        )
        fetched = await shop.get_order(order["id"])
    assert fetched["note_attributes"] == [{"name": "erp_order", "value": "SO-1042"}]
    assert fetched["tags"] == "erp-synced"
    assert fetched["total_price"] == order["total_price"]


async def test_products_variant_price_and_inventory(sim: ShopifySimulator, shop_url: str) -> None:
    sim.seed_products(make_catalog(3))
    variant = make_catalog(3)[1]["variants"][0]
    item = variant["inventory_item_id"]
    async with client(shop_url) as shop:
        products = [p async for p in shop.list_products(limit=2)]
        updated = await shop.update_variant(variant["id"], {"price": "19.5"})
        level = await shop.set_inventory_level(item, DEFAULT_LOCATION_ID, 12)
        adjusted = await shop.adjust_inventory_level(item, DEFAULT_LOCATION_ID, -5)
        levels = await shop.get_inventory_levels(inventory_item_ids=[item])
        bad_price = await expect_error(shop.update_variant(variant["id"], {"price": "-1"}))
        unknown_variant = await expect_error(shop.update_variant(1, {"price": "1"}))
        unknown_item = await expect_error(shop.set_inventory_level(1, DEFAULT_LOCATION_ID, 1))
    assert len(products) == 3
    assert updated["price"] == "19.50"
    assert (level["available"], adjusted["available"]) == (12, 7)
    assert [(lvl["inventory_item_id"], lvl["available"]) for lvl in levels] == [(item, 7)]
    assert (bad_price.kind, bad_price.category, bad_price.status) == (FailureKind.DATA, FailureCategory.VALIDATION, 422)
    assert (unknown_variant.category, unknown_variant.status) == (FailureCategory.SKU_NOT_FOUND, 404)
    assert (unknown_item.category, unknown_item.status) == (FailureCategory.SKU_NOT_FOUND, 422)


async def test_fulfillment_closes_fulfillment_order_and_second_is_fulfillment_state(
    sim: ShopifySimulator, shop_url: str
) -> None:
    # given an order with one open fulfillment order
    order = make_order(2, line_count=2)
    sim.seed_orders([order])
    async with client(shop_url) as shop:
        [fo] = await shop.get_fulfillment_orders(order["id"])
        assert fo["status"] == "open"
        # when it is fulfilled with tracking
        fulfillment = await shop.create_fulfillment(
            [{"fulfillment_order_id": fo["id"]}], tracking_number="1Z999", tracking_company="UPS"
        )
        [after] = await shop.get_fulfillment_orders(order["id"])
        fetched = await shop.get_order(order["id"])
        # then fulfilling again is a fulfillment-state failure, not a crash
        err = await expect_error(shop.create_fulfillment([{"fulfillment_order_id": fo["id"]}]))
        blank = await expect_error(shop.create_fulfillment([]))
    assert fulfillment["tracking_number"] == "1Z999"
    assert sum(li["quantity"] for li in fulfillment["line_items"]) == sum(li["quantity"] for li in order["line_items"])
    assert after["status"] == "closed"
    assert fetched["fulfillment_status"] == "fulfilled"
    assert (err.kind, err.category, err.status) == (FailureKind.DATA, FailureCategory.FULFILLMENT_STATE, 422)
    assert "unfulfillable status= closed" in err.message
    assert (blank.category, blank.status) == (FailureCategory.VALIDATION, 422)
    assert blank.details["errors"] == {"errors": {"line_items_by_fulfillment_order": ["can't be blank"]}}


async def test_refund_partial_then_over_refund_is_validation(sim: ShopifySimulator, shop_url: str) -> None:
    order = make_order(5, line_count=1)
    sim.seed_orders([order])
    line = order["line_items"][0]
    async with client(shop_url) as shop:
        refund = await shop.create_refund(
            order["id"],
            {
                "refund_line_items": [{"line_item_id": line["id"], "quantity": 1}],
                "transactions": [{"amount": "5.00", "kind": "refund"}],
            },
        )
        fetched = await shop.get_order(order["id"])
        too_much = await expect_error(shop.create_refund(order["id"], {"transactions": [{"amount": "99999.00"}]}))
    assert refund["transactions"][0]["amount"] == "5.00"
    assert fetched["financial_status"] == "partially_refunded"
    assert (too_much.kind, too_much.category, too_much.status) == (FailureKind.DATA, FailureCategory.VALIDATION, 422)


async def test_payouts_are_listed(sim: ShopifySimulator, shop_url: str) -> None:
    sim.seed_orders(make_order(i) for i in range(3))
    async with client(shop_url) as shop:
        payouts = await shop.list_payouts()
    assert [p["date"] for p in payouts] == ["2025-01-06"]
    assert payouts[0]["summary"]["charges_gross_amount"] == str(
        sum(Decimal(make_order(i)["total_price"]) for i in range(3))
    )


async def test_cancel_order_then_fulfillment_is_fulfillment_state(sim: ShopifySimulator, shop_url: str) -> None:
    order = make_order(11)
    sim.seed_orders([order])
    async with client(shop_url) as shop:
        [fo] = await shop.get_fulfillment_orders(order["id"])
        cancelled = await shop.cancel_order(order["id"], reason="customer")
        again = await expect_error(shop.cancel_order(order["id"]))
        fulfil = await expect_error(shop.create_fulfillment([{"fulfillment_order_id": fo["id"]}]))
        open_ids = [o["id"] async for o in shop.list_orders(status="open")]
    assert (cancelled["cancel_reason"], cancelled["cancelled_at"] is not None) == ("customer", True)
    assert (again.category, again.status) == (FailureCategory.VALIDATION, 422)
    assert (fulfil.category, fulfil.status) == (FailureCategory.FULFILLMENT_STATE, 422)
    assert "status= cancelled" in fulfil.message
    assert open_ids == []


# ----- bad input -------------------------------------------------------------------------------
async def test_bad_input_is_answered_like_shopify(sim: ShopifySimulator, shop_url: str) -> None:
    order = make_order(0)
    sim.seed_orders([order])
    url = f"{shop_url}{API}/orders/{order['id']}.json"
    async with httpx.AsyncClient(headers=AUTH) as http:
        malformed = await http.put(url, content=b'{"order": {', headers={"Content-Type": "application/json"})
        no_root = await http.put(url, json={"note": "x"})
        missing = await http.post(f"{shop_url}{API}/inventory_levels/set.json", json={"location_id": 1})
        huge = await http.put(url, json={"order": {"note": "x" * 300_000}})
    assert malformed.status_code == 400 and "Malformed JSON" in malformed.json()["errors"]
    assert (no_root.status_code, no_root.json()) == (
        400,
        {"errors": {"order": "Required parameter missing or invalid"}},
    )
    assert (missing.status_code, missing.json()) == (
        422,
        {"errors": {"inventory_item_id": ["can't be blank"], "available": ["can't be blank"]}},
    )
    assert huge.status_code == 413
    async with client(shop_url) as shop:
        err = await expect_error(shop.update_order(order["id"], {"note": "x" * 300_000}))
    assert (err.kind, err.category, err.status) == (FailureKind.DATA, FailureCategory.VALIDATION, 413)


async def test_unknown_order_is_not_found(sim: ShopifySimulator, shop_url: str) -> None:
    async with client(shop_url) as shop:
        err = await expect_error(shop.get_order(42))
    assert (err.kind, err.category, err.status) == (FailureKind.DATA, FailureCategory.NOT_FOUND, 404)


# ----- transient failures (fault injection) --------------------------------------------------
async def test_injected_429_burst_is_retried_until_success(sim: ShopifySimulator, shop_url: str) -> None:
    order = make_order(1)
    sim.seed_orders([order])
    sim.faults.set(FaultPlan(throttle_burst=2))
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    async with client(shop_url, sleep=fake_sleep) as shop:
        fetched = await shop.get_order(order["id"])
    assert fetched["id"] == order["id"]
    assert sim.faults.injected == {"throttle": 2}
    # the injected 429s say Retry-After: 2.0 and the client honours it (other sleeps are its own pacing)
    assert [s for s in sleeps if s >= 1] == [2.0, 2.0]


async def test_exhausted_429s_raise_transient_rate_limit(sim: ShopifySimulator, shop_url: str) -> None:
    sim.faults.set(FaultPlan(throttle_burst=10))
    async with client(shop_url, sleep=_no_sleep) as shop:
        err = await expect_error(shop.get_order(1))
    assert (err.kind, err.category, err.status) == (FailureKind.TRANSIENT, FailureCategory.RATE_LIMIT, 429)
    assert sim.faults.injected == {"throttle": FAST_RETRY.max_attempts}


async def test_5xx_retried_for_reads_then_transient_connection(sim: ShopifySimulator, shop_url: str) -> None:
    sim.faults.set(FaultPlan(error_rate=1.0, error_status=503))
    async with client(shop_url) as shop:
        err = await expect_error(shop.get_order(1))
        sim.faults.injected.clear()
        refund_err = await expect_error(shop.create_refund(1, {"note": "x"}))
    assert (err.kind, err.category, err.status) == (FailureKind.TRANSIENT, FailureCategory.CONNECTION, 503)
    # a refund is not idempotent: one attempt only, still classified transient
    assert sim.faults.injected == {"error": 1}
    assert (refund_err.kind, refund_err.category, refund_err.status) == (
        FailureKind.TRANSIENT,
        FailureCategory.CONNECTION,
        503,
    )


async def test_timeouts_are_transient_connection(sim: ShopifySimulator, shop_url: str) -> None:
    sim.faults.set(FaultPlan(timeout_rate=1.0, timeout_s=1.0))
    async with client(shop_url, timeout_s=0.1) as shop:
        err = await expect_error(shop.get_order(1))
    assert (err.kind, err.category, err.status) == (FailureKind.TRANSIENT, FailureCategory.CONNECTION, None)
    assert sim.faults.injected == {"timeout": FAST_RETRY.max_attempts}


async def test_dropped_connections_are_retried_and_recover(sim: ShopifySimulator, shop_url: str) -> None:
    order = make_order(1)
    sim.seed_orders([order])
    sim.faults.set(FaultPlan(drop_rate=0.5))
    sim.faults.rng.seed(7)
    async with ShopifyClient(
        shop_url, DEFAULT_TOKEN, retry=RetryPolicy(max_attempts=20, base_delay_s=0.001, max_delay_s=0.002)
    ) as shop:
        results = await asyncio.gather(*(shop.get_order(order["id"]) for _ in range(10)))
    assert [r["id"] for r in results] == [order["id"]] * 10
    assert sim.faults.injected["drop"] >= 1


async def test_malformed_json_response_is_classified_not_a_crash() -> None:
    async def garbage(request: object) -> Response:
        return Response(b'{"order": {"id": 1,', media_type="application/json")

    app = Starlette(routes=[Route("/admin/api/2025-07/orders/1.json", garbage)])
    with serve_in_thread(app) as srv:
        async with client(srv.url) as shop:
            err = await expect_error(shop.get_order(1))
    assert (err.kind, err.category, err.status, err.vendor_code) == (
        FailureKind.TRANSIENT,
        FailureCategory.CONNECTION,
        200,
        "malformed_response",
    )
    assert "not valid JSON" in err.message


async def test_acquire_hook_runs_before_every_request(sim: ShopifySimulator, shop_url: str) -> None:
    sim.seed_orders(make_order(i) for i in range(5))
    calls = 0

    async def acquire() -> None:
        nonlocal calls
        calls += 1

    async with client(shop_url, acquire=acquire) as shop:
        names = [o["name"] async for o in shop.list_orders(limit=2)]
    assert len(names) == 5
    assert calls == 3


async def _no_sleep(_: float) -> None:
    return None
