"""NetSuite simulator + client over real HTTP: TBA auth, eid upsert, idempotency, transforms, paging, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.netsuite import NetSuiteClient
from crossdock.connectors.netsuite.oauth1 import authorization_header
from crossdock.connectors.sandbox.netsuite import NetSuiteSimulator, create_netsuite_app
from crossdock.connectors.sandbox.netsuite_state import NSSettings
from crossdock.connectors.transport import RetryPolicy
from tests.integration.connectors._erp_fixtures import FAST_RETRY, Counter, FakeClock, serve_mounted

ACCOUNT = "1234567-sb1"
CREDS = {"consumer_key": "ck-1", "consumer_secret": "cs-1", "token_id": "tk-1", "token_secret": "ts-1"}
BURST_RETRY = RetryPolicy(max_attempts=40, base_delay_s=0.005, max_delay_s=0.05)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[NetSuiteSimulator, str]]:
    sim = NetSuiteSimulator()
    with serve_mounted("/netsuite", create_netsuite_app(sim)) as (_, base):
        yield sim, base


@pytest.fixture
def sim(server: tuple[NetSuiteSimulator, str]) -> NetSuiteSimulator:
    sim = server[0]
    sim.reset()
    sim.configure(**NSSettings().model_dump())
    sim.add_account(ACCOUNT, **CREDS)
    sim.seed_customers(ACCOUNT, [{"id": "501", "externalId": "CUST-1", "companyName": "Adatum", "creditLimit": 10000}])
    sim.seed_items(
        ACCOUNT,
        [
            {"id": "1009", "externalId": "SKU-1", "itemId": "SKU-1", "basePrice": 20.0},
            {"id": "1010", "externalId": "SKU-2", "itemId": "SKU-2", "basePrice": 5.5},
        ],
    )
    return sim


@pytest.fixture
def base_url(server: tuple[NetSuiteSimulator, str], sim: NetSuiteSimulator) -> str:
    return server[1]


def make_client(base_url: str, **kw: Any) -> NetSuiteClient:
    creds = {**CREDS, **{k: kw.pop(k) for k in list(kw) if k in CREDS}}
    return NetSuiteClient(base_url, ACCOUNT, **creds, retry=kw.pop("retry", FAST_RETRY), **kw)


@pytest.fixture
async def ns(base_url: str) -> AsyncIterator[NetSuiteClient]:
    async with make_client(base_url) as client:
        yield client


def sales_order(external: str, *lines: tuple[str, float]) -> dict[str, Any]:
    return {
        "externalId": external,
        "entity": {"externalId": "CUST-1"},
        "item": {"items": [{"item": {"externalId": sku}, "quantity": qty} for sku, qty in lines]},
    }


# -- auth ------------------------------------------------------------------------------------------
async def test_wrong_token_secret_is_an_auth_failure(base_url: str, sim: NetSuiteSimulator) -> None:
    async with make_client(base_url, token_secret="nope") as client:
        with pytest.raises(ConnectorError) as caught:
            await client.get("customer", "501")
    assert (caught.value.kind, caught.value.category) == (FailureKind.AUTH, FailureCategory.AUTH)
    assert (caught.value.status, caught.value.vendor_code) == (401, "INVALID_LOGIN")
    assert "Login Audit Trail" in caught.value.message


async def test_lowercase_realm_is_refused(base_url: str, sim: NetSuiteSimulator) -> None:
    url = f"{base_url}/services/rest/record/v1/customer/501"
    header = authorization_header("GET", url, realm="1234567_sb1", **CREDS)
    async with httpx.AsyncClient() as http:
        response = await http.get(url, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["o:errorDetails"][0]["o:errorCode"] == "INVALID_LOGIN"


async def test_forged_signature_is_refused_and_nothing_is_stored(base_url: str, sim: NetSuiteSimulator) -> None:
    url = f"{base_url}/services/rest/record/v1/salesOrder"
    header = authorization_header("POST", url, realm="1234567_SB1", **{**CREDS, "consumer_secret": "guess"})
    async with httpx.AsyncClient() as http:
        response = await http.post(url, headers={"Authorization": header}, json=sales_order("SO-X", ("SKU-1", 1)))
    assert response.status_code == 401
    assert response.json() == {
        "type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.2",
        "title": "Unauthorized",
        "status": 401,
        "o:errorDetails": [
            {
                "detail": "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at "
                "Setup > Users/Roles > User Management > View Login Audit Trail.",
                "o:errorCode": "INVALID_LOGIN",
            }
        ],
    }
    assert sim.records(ACCOUNT, "salesOrder") == []


async def test_replayed_nonce_is_refused(base_url: str, sim: NetSuiteSimulator) -> None:
    url = f"{base_url}/services/rest/record/v1/customer/501"
    header = authorization_header("GET", url, realm="1234567_SB1", nonce="same-nonce-1", **CREDS)
    async with httpx.AsyncClient() as http:
        first = await http.get(url, headers={"Authorization": header})
        replay = await http.get(url, headers={"Authorization": header})
    assert (first.status_code, replay.status_code) == (200, 401)


async def test_signature_covers_the_query_string(base_url: str, sim: NetSuiteSimulator) -> None:
    url = f"{base_url}/services/rest/record/v1/customer/501"
    header = authorization_header("GET", url, realm="1234567_SB1", **CREDS)
    async with httpx.AsyncClient() as http:
        tampered = await http.get(url, params={"expandSubResources": "true"}, headers={"Authorization": header})
    assert tampered.status_code == 401


async def test_stale_timestamp_is_refused(base_url: str, sim: NetSuiteSimulator) -> None:
    clock = FakeClock(start=sim.now() - 301)
    async with make_client(base_url, clock=clock) as client:
        with pytest.raises(ConnectorError) as caught:
            await client.get("customer", "501")
        # Now well inside the ±300 s window, measured from the simulator's clock at this moment
        # (real time keeps passing on the simulator's side, more so on a loaded machine).
        clock.now = sim.now() - 290
        assert (await client.get("customer", "501"))["companyName"] == "Adatum"
    assert caught.value.category is FailureCategory.AUTH


# -- writes ----------------------------------------------------------------------------------------
async def test_create_follows_location_and_get_by_eid(ns: NetSuiteClient, sim: NetSuiteSimulator) -> None:
    order_id = await ns.create("salesOrder", sales_order("SHOP-1001", ("SKU-1", 2), ("SKU-2", 1)))
    order = await ns.get("salesOrder", "eid:SHOP-1001", expand_sub_resources=True)
    assert order["id"] == order_id
    assert (order["tranId"], order["total"], order["entity"]) == ("SO1001", 45.5, {"id": "501", "refName": "Adatum"})
    assert [line["item"]["id"] for line in order["item"]["items"]] == ["1009", "1010"]
    assert order["links"][0]["href"].endswith(f"/netsuite/services/rest/record/v1/salesOrder/{order_id}")
    collapsed = await ns.get("salesOrder", order_id)
    assert "items" not in collapsed["item"]


async def test_upsert_by_eid_twice_keeps_one_record(ns: NetSuiteClient, sim: NetSuiteSimulator) -> None:
    first = await ns.upsert("customer", "CID002", {"companyName": "Fabrikam", "email": "a@fabrikam.example"})
    second = await ns.upsert("customer", "CID002", {"email": "ap@fabrikam.example"})
    rows = [c for c in sim.records(ACCOUNT, "customer") if c.get("externalId") == "CID002"]
    assert first == second
    assert len(rows) == 1
    assert (rows[0]["companyName"], rows[0]["email"]) == ("Fabrikam", "ap@fabrikam.example")


async def test_same_idempotency_key_twice_creates_one_record(ns: NetSuiteClient, sim: NetSuiteSimulator) -> None:
    body = sales_order("SHOP-2002", ("SKU-1", 1))
    first = await ns.create("salesOrder", body, idempotency_key="0f6f7e2e-7d4b-4a8e-9a51-3c1b8a3e2f10")
    second = await ns.create("salesOrder", body, idempotency_key="0f6f7e2e-7d4b-4a8e-9a51-3c1b8a3e2f10")
    assert first == second
    assert len(sim.records(ACCOUNT, "salesOrder")) == 1


async def test_lost_response_is_retried_with_the_same_key_and_resolved(
    ns: NetSuiteClient, sim: NetSuiteSimulator
) -> None:
    # given the create lands but the gateway loses the answer (502 page)
    sim.corrupt_next("html_error", method="POST")
    order_id = await ns.create("salesOrder", sales_order("SHOP-3003", ("SKU-2", 4)))
    # then the retry hit IDEMPOTENCY_ERROR and the client resolved the first record by eid
    orders = sim.records(ACCOUNT, "salesOrder")
    assert [o["id"] for o in orders] == [order_id]


async def test_duplicate_key_without_external_id_is_a_duplicate_failure(
    ns: NetSuiteClient, sim: NetSuiteSimulator
) -> None:
    body = {"companyName": "No Eid Inc"}
    await ns.create("customer", body, idempotency_key="key-1")
    with pytest.raises(ConnectorError) as caught:
        await ns.create("customer", body, idempotency_key="key-1")
    assert (caught.value.kind, caught.value.category, caught.value.vendor_code) == (
        FailureKind.DATA,
        FailureCategory.DUPLICATE,
        "IDEMPOTENCY_ERROR",
    )


async def test_transform_fulfil_and_bill_then_replay_resolves(ns: NetSuiteClient, sim: NetSuiteSimulator) -> None:
    order_id = await ns.create("salesOrder", sales_order("SHOP-4004", ("SKU-1", 3)))
    fulfilment = await ns.transform("salesOrder", order_id, "itemFulfillment", idempotency_key="ful-1")
    again = await ns.transform("salesOrder", order_id, "itemFulfillment", idempotency_key="ful-1")
    invoice_id = await ns.transform("salesOrder", "eid:SHOP-4004", "invoice")
    order = await ns.get("salesOrder", order_id)
    invoice = await ns.get("invoice", invoice_id)
    assert again == fulfilment
    assert len(sim.records(ACCOUNT, "itemFulfillment")) == 1
    assert order["status"]["id"] == "Billed"
    assert (invoice["createdFrom"]["id"], invoice["total"]) == (order_id, 60.0)
    assert (await ns.get("customer", "501"))["balance"] == 60.0
    with pytest.raises(ConnectorError) as caught:
        await ns.transform("salesOrder", order_id, "itemFulfillment")
    assert caught.value.category is FailureCategory.FULFILLMENT_STATE


# -- reads -----------------------------------------------------------------------------------------
async def test_collection_paging_over_1200_customers_and_q_filter(ns: NetSuiteClient, sim: NetSuiteSimulator) -> None:
    sim.seed_customers(ACCOUNT, [{"externalId": f"C{i:05d}", "companyName": f"Co {i}"} for i in range(1200)])
    ids = [row["id"] async for row in ns.list("customer", page_size=250)]
    assert len(ids) == len(set(ids)) == 1201
    hits = [row["id"] async for row in ns.list("customer", q='externalId IS "C00042"')]
    assert hits == [sim.records(ACCOUNT, "customer")[43]["id"]]


async def test_suiteql_paging_over_1100_rows(ns: NetSuiteClient, sim: NetSuiteSimulator) -> None:
    sim.seed_items(ACCOUNT, [{"itemId": f"BULK-{i:04d}", "basePrice": i} for i in range(1100)])
    rows = [r async for r in ns.suiteql("SELECT id, itemid FROM item WHERE itemid LIKE 'BULK-%' ORDER BY itemid DESC")]
    assert len(rows) == 1100
    assert len({r["id"] for r in rows}) == 1100
    assert rows[0] == {"links": [], "id": rows[0]["id"], "itemid": "BULK-1099"}
    assert rows[-1]["itemid"] == "BULK-0000"


async def test_suiteql_page_shape(base_url: str, ns: NetSuiteClient, sim: NetSuiteSimulator) -> None:
    sim.seed_items(ACCOUNT, [{"itemId": f"P-{i}"} for i in range(5)])
    url = f"{base_url}/services/rest/query/v1/suiteql?limit=2&offset=2"
    header = authorization_header("POST", url, realm="1234567_SB1", **CREDS)
    async with httpx.AsyncClient() as http:
        page = (
            await http.post(
                url, headers={"Authorization": header, "Prefer": "transient"}, json={"q": "SELECT id FROM item"}
            )
        ).json()
    assert (page["count"], page["hasMore"], page["offset"], page["totalResults"]) == (2, True, 2, 7)
    assert [link["rel"] for link in page["links"]] == ["first", "previous", "next", "last", "self"]
    assert page["links"][2]["href"].endswith("/netsuite/services/rest/query/v1/suiteql?limit=2&offset=4")


# -- limits ----------------------------------------------------------------------------------------
async def test_concurrency_limit_is_respected_under_load(base_url: str, sim: NetSuiteSimulator) -> None:
    sim.configure(latency_ms=15)
    counter = Counter()
    async with make_client(base_url, retry=BURST_RETRY, acquire=counter) as client:
        results = await asyncio.gather(*(client.get("inventoryItem", "1009") for _ in range(30)))
    counters = sim.counters()
    assert len(results) == 30 and all(r["itemId"] == "SKU-1" for r in results)
    assert counters["max_in_flight"] == 5
    assert counters["throttled"] > 0
    assert counter.calls == 30 + counters["throttled"]


async def test_per_account_concurrency_limit(base_url: str, sim: NetSuiteSimulator) -> None:
    sim.add_account(ACCOUNT, **CREDS, concurrency_limit=2)
    sim.configure(latency_ms=15)
    async with make_client(base_url, retry=BURST_RETRY) as client:
        await asyncio.gather(*(client.get("inventoryItem", "1010") for _ in range(10)))
    assert sim.counters()["max_in_flight"] == 2


async def test_control_api_seeds_and_reports(base_url: str, sim: NetSuiteSimulator) -> None:
    async with httpx.AsyncClient(base_url=f"{base_url}/_control") as http:
        account = await http.post("/accounts", json={"account_id": "999-sb2", **CREDS, "concurrency_limit": 15})
        seeded = await http.post("/accounts/999-sb2/customer", json=[{"externalId": "Z", "companyName": "Zed"}])
        settings = await http.post("/settings", json={"enforce_holds": False})
        counters = await http.get("/counters")
    assert account.json() == {"realm": "999_SB2"}
    assert seeded.json()["created"] == 1
    assert settings.json()["enforce_holds"] is False
    assert counters.json() == sim.counters()
    assert sim.account("999-SB2").concurrency_limit == 15
