"""Shopify throttling over real HTTP: REST leaky-bucket arithmetic, client pacing, GraphQL cost."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.sandbox.serve import serve_in_thread
from crossdock.connectors.sandbox.shopify import create_shopify_app
from crossdock.connectors.sandbox.shopify_limits import ManualClock
from crossdock.connectors.sandbox.shopify_orders import DEFAULT_LOCATION_ID, make_catalog, make_order
from crossdock.connectors.sandbox.shopify_state import DEFAULT_SHOP, DEFAULT_TOKEN, ShopifySimulator
from crossdock.connectors.shopify import RetryPolicy, ShopifyClient

API = "/admin/api/2025-07"
AUTH = {"X-Shopify-Access-Token": DEFAULT_TOKEN}
SET_QUANTITIES = """
mutation inventorySetQuantities($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { reason changes { name delta quantityAfterChange } }
    userErrors { field message code }
  }
}
"""


@pytest.fixture
def manual() -> Iterator[tuple[ShopifySimulator, ManualClock, str]]:
    clock = ManualClock()
    sim = ShopifySimulator(clock=clock)
    with serve_in_thread(create_shopify_app(sim)) as srv:
        yield sim, clock, srv.url


def rest_counters(sim: ShopifySimulator) -> dict[str, float]:
    return sim.counters()["shops"][DEFAULT_SHOP]["rest"]  # type: ignore[no-any-return]


async def test_leaky_bucket_arithmetic_is_exact(manual: tuple[ShopifySimulator, ManualClock, str]) -> None:
    sim, clock, url = manual
    sim.seed_orders([make_order(0)])
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        # given 40 calls at the same instant
        seen = [(await http.get(f"{API}/orders.json")).headers["X-Shopify-Shop-Api-Call-Limit"] for _ in range(40)]
        # when the 41st arrives
        full = await http.get(f"{API}/orders.json")
        # then it is refused until one marble has leaked (1 / 2 per second = 0.5 s)
        clock.advance(0.4)
        still_full = await http.get(f"{API}/orders.json")
        clock.advance(0.6)  # 1.0 s after filling: two marbles gone
        after_1s = await http.get(f"{API}/orders.json")
        clock.advance(100)
        drained = await http.get(f"{API}/orders.json")
    assert seen == [f"{n}/40" for n in range(1, 41)]
    assert (full.status_code, full.headers["Retry-After"], full.headers["X-Shopify-Shop-Api-Call-Limit"]) == (
        429,
        "0.5",
        "40/40",
    )
    assert "Exceeded 2 calls per second" in full.json()["errors"]
    assert (still_full.status_code, still_full.headers["Retry-After"]) == (429, "0.1")
    assert (after_1s.status_code, after_1s.headers["X-Shopify-Shop-Api-Call-Limit"]) == (200, "39/40")
    assert drained.headers["X-Shopify-Shop-Api-Call-Limit"] == "1/40"
    assert rest_counters(sim)["accepted"] == 42
    assert rest_counters(sim)["throttled"] == 2
    assert rest_counters(sim)["max_bucket_level"] == 40


async def test_client_paces_itself_and_never_hits_429(manual: tuple[ShopifySimulator, ManualClock, str]) -> None:
    # given a client sharing the simulator's clock, whose sleeps move that clock
    sim, clock, url = manual
    order = make_order(0)
    sim.seed_orders([order])

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    # when it makes 100 calls back to back
    async with ShopifyClient(url, DEFAULT_TOKEN, sleep=sleep, clock=clock) as shop:
        for _ in range(100):
            await shop.get_order(order["id"])
    # then the bucket never overflowed: 39 calls fit at once, the other 61 waited for the 2/s leak
    assert rest_counters(sim)["accepted"] == 100
    assert rest_counters(sim)["throttled"] == 0
    assert rest_counters(sim)["max_bucket_level"] == 39
    assert clock.now - 1_000.0 == pytest.approx(61 / 2, abs=0.01)


async def test_sustained_concurrent_load_stays_within_the_bucket() -> None:
    # given a Plus-like shop leaking 100/s (so the test is quick) and one paced client
    sim = ShopifySimulator(rest_capacity=40, rest_leak_rate=100.0)
    sim.seed_orders(make_order(i) for i in range(20))
    ids = [make_order(i)["id"] for i in range(20)]
    with serve_in_thread(create_shopify_app(sim)) as srv:
        # At 100/s each millisecond of server latency is 0.1 marble; 5 marbles of headroom = 50 ms.
        async with ShopifyClient(srv.url, DEFAULT_TOKEN, rest_leak_rate=100.0, rest_headroom=5) as shop:
            # when 25 workers make 300 calls as fast as they can
            async def worker(n: int) -> int:
                done = 0
                for i in range(12):
                    await shop.get_order(ids[(n + i) % 20])
                    done += 1
                return done

            completed = await asyncio.gather(*(worker(n) for n in range(25)))
    # then every call completed and the simulator never saw more than the bucket allows
    counters = rest_counters(sim)
    assert sum(completed) == 300
    assert counters["accepted"] == 300
    # The client's pacing keeps 429s rare, but under scheduler noise (2 busy cores) a few replies can be
    # late enough to overfill its estimate; those 429s are retried, which is what matters.
    assert counters["throttled"] <= 30  # < 10% of calls
    assert counters["max_bucket_level"] <= 40
    assert counters["max_in_window"] <= 40 + 100  # any 1 s window: a full bucket plus one second of leak


async def test_graphql_cost_bucket_throttles_with_exact_extensions(
    manual: tuple[ShopifySimulator, ManualClock, str],
) -> None:
    sim, clock, url = manual
    sim.seed_products(make_catalog(1))
    item = make_catalog(1)[0]["variants"][0]["inventory_item_id"]
    variables = {
        "input": {
            "name": "available",
            "reason": "correction",
            "quantities": [
                {
                    "inventoryItemId": f"gid://shopify/InventoryItem/{item}",
                    "locationId": f"gid://shopify/Location/{DEFAULT_LOCATION_ID}",
                    "quantity": 5,
                }
            ],
        }
    }
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        # given the 2,000-point bucket drained by 200 mutations of 10 points each
        first = (await http.post(f"{API}/graphql.json", json={"query": SET_QUANTITIES, "variables": variables})).json()
        for _ in range(199):
            await http.post(f"{API}/graphql.json", json={"query": SET_QUANTITIES, "variables": variables})
        # when one more arrives
        throttled = await http.post(f"{API}/graphql.json", json={"query": SET_QUANTITIES, "variables": variables})
        # then it is a 200 THROTTLED with no actual cost, until 0.1 s restores 10 points
        clock.advance(0.1)
        restored = (
            await http.post(f"{API}/graphql.json", json={"query": SET_QUANTITIES, "variables": variables})
        ).json()
    assert first["extensions"]["cost"] == {
        "requestedQueryCost": 10,
        "actualQueryCost": 10,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1990, "restoreRate": 100.0},
    }
    assert first["data"]["inventorySetQuantities"]["inventoryAdjustmentGroup"]["changes"][0]["quantityAfterChange"] == 5
    assert throttled.status_code == 200
    assert throttled.json() == {
        "errors": [
            {
                "message": "Throttled",
                "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
            }
        ],
        "extensions": {
            "cost": {
                "requestedQueryCost": 10,
                "actualQueryCost": None,
                "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 0, "restoreRate": 100.0},
            }
        },
    }
    assert restored["extensions"]["cost"]["actualQueryCost"] == 10
    assert sim.counters()["shops"][DEFAULT_SHOP]["graphql"] == {"requests": 202, "throttled": 1}


async def test_graphql_query_refunds_unused_cost(manual: tuple[ShopifySimulator, ManualClock, str]) -> None:
    sim, _, url = manual
    sim.seed_products(make_catalog(3))
    async with ShopifyClient(url, DEFAULT_TOKEN) as shop, httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        data = await shop.graphql(
            "query products($first: Int!) { products(first: $first) { edges { node { id } } } }", {"first": 50}
        )
        raw = (
            await http.post(
                f"{API}/graphql.json",
                json={"query": "{ products(first: 50) { edges { cursor } } }", "variables": {"first": 50}},
            )
        ).json()
    assert len(data["products"]["edges"]) == 3
    assert raw["extensions"]["cost"]["requestedQueryCost"] == 52
    assert raw["extensions"]["cost"]["actualQueryCost"] == 5
    assert raw["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 2000 - 5 - 5


async def test_client_waits_out_graphql_throttle(manual: tuple[ShopifySimulator, ManualClock, str]) -> None:
    sim, clock, url = manual
    sim.shop().graphql_bucket.take(2000)  # drained by another app of the same shop
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    async with ShopifyClient(url, DEFAULT_TOKEN, sleep=sleep, clock=clock) as shop:
        data = await shop.graphql("{ shop { name } }")
    assert data == {"shop": {"name": "crossdock-sandbox", "myshopifyDomain": DEFAULT_SHOP, "currencyCode": "USD"}}
    assert slept and sum(slept) == pytest.approx(0.01, abs=0.01)
    assert sim.counters()["shops"][DEFAULT_SHOP]["graphql"]["throttled"] == 1


async def test_graphql_errors_are_classified(manual: tuple[ShopifySimulator, ManualClock, str]) -> None:
    sim, clock, url = manual
    variables = {
        "input": {
            "name": "available",
            "quantities": [
                {
                    "inventoryItemId": "gid://shopify/InventoryItem/1",
                    "locationId": "gid://shopify/Location/1",
                    "quantity": 1,
                }
            ],
        }
    }
    async with ShopifyClient(url, DEFAULT_TOKEN) as shop:
        with pytest.raises(ConnectorError) as unknown_item:
            await shop.graphql(SET_QUANTITIES, variables)
        with pytest.raises(ConnectorError) as too_costly:
            await shop.graphql("{ products(first: 1000) { edges { cursor } } }", {"first": 1000})
        with pytest.raises(ConnectorError) as bad_field:
            await shop.graphql("{ customersXYZ { id } }")
    assert (unknown_item.value.kind, unknown_item.value.category, unknown_item.value.vendor_code) == (
        FailureKind.DATA,
        FailureCategory.SKU_NOT_FOUND,
        "INVALID_INVENTORY_ITEM",
    )
    assert (too_costly.value.kind, too_costly.value.vendor_code) == (FailureKind.CONFIG, "MAX_COST_EXCEEDED")
    assert (bad_field.value.kind, bad_field.value.vendor_code) == (FailureKind.CONFIG, "undefinedField")


async def test_graphql_exhausted_throttle_is_transient_rate_limit(
    manual: tuple[ShopifySimulator, ManualClock, str],
) -> None:
    sim, _, url = manual

    async def sleep(_: float) -> None:
        sim.shop().graphql_bucket.take(2000)  # someone else keeps the bucket empty

    sim.shop().graphql_bucket.take(2000)
    async with ShopifyClient(url, DEFAULT_TOKEN, sleep=sleep, retry=RetryPolicy(max_attempts=3)) as shop:
        with pytest.raises(ConnectorError) as info:
            await shop.graphql("{ shop { name } }")
    assert (info.value.kind, info.value.category, info.value.vendor_code) == (
        FailureKind.TRANSIENT,
        FailureCategory.RATE_LIMIT,
        "THROTTLED",
    )
