"""Business Central simulator + client over real HTTP: auth, paging, limits, upsert, ETags, actions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from crossdock.connectors.businesscentral import BusinessCentralClient
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.sandbox.businesscentral import BusinessCentralSimulator, create_businesscentral_app
from crossdock.connectors.sandbox.businesscentral_state import BCSettings
from tests.integration.connectors._erp_fixtures import (
    BC_CUSTOMERS,
    BC_ITEMS,
    FAST_RETRY,
    Counter,
    FakeClock,
    serve_mounted,
)

TENANT, ENV = "contoso.onmicrosoft.com", "production"
SCOPE = "https://api.businesscentral.dynamics.com/.default"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[BusinessCentralSimulator, str]]:
    sim = BusinessCentralSimulator(BCSettings(max_page_size=100))
    with serve_mounted("/businesscentral", create_businesscentral_app(sim)) as (_, base):
        yield sim, base


@pytest.fixture
def sim(server: tuple[BusinessCentralSimulator, str]) -> BusinessCentralSimulator:
    sim = server[0]
    sim.reset(keep_clients=False)
    sim.configure(**BCSettings(max_page_size=100).model_dump())
    sim.add_client("crossdock-app", "s3cret")
    sim.add_company("CRONUS USA", "11111111-2222-3333-4444-555555555555")
    sim.seed_items("11111111-2222-3333-4444-555555555555", BC_ITEMS)
    sim.seed_customers("11111111-2222-3333-4444-555555555555", BC_CUSTOMERS)
    return sim


COMPANY = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def base_url(server: tuple[BusinessCentralSimulator, str], sim: BusinessCentralSimulator) -> str:
    return server[1]


def make_client(base_url: str, secret: str = "s3cret", **kw: object) -> BusinessCentralClient:
    return BusinessCentralClient(
        base_url,
        TENANT,
        ENV,
        COMPANY,
        "crossdock-app",
        secret,
        retry=FAST_RETRY,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
async def bc(base_url: str) -> AsyncIterator[BusinessCentralClient]:
    async with make_client(base_url) as client:
        yield client


def order_body(external: str, *lines: tuple[str, float], customer: str = "C0001") -> dict[str, object]:
    return {
        "externalDocumentNumber": external,
        "customerNumber": customer,
        "salesOrderLines": [{"lineType": "Item", "lineObjectNumber": n, "quantity": q} for n, q in lines],
    }


# -- auth ------------------------------------------------------------------------------------------
async def test_wrong_client_secret_is_an_auth_failure_and_no_token_is_issued(
    base_url: str, sim: BusinessCentralSimulator
) -> None:
    async with make_client(base_url, secret="wrong") as client:
        with pytest.raises(ConnectorError) as caught:
            await client.get_item_by_number("1000")
    assert (caught.value.kind, caught.value.category) == (FailureKind.AUTH, FailureCategory.AUTH)
    assert (caught.value.status, caught.value.vendor_code) == (401, "invalid_client")
    assert sim.counters()["tokens_issued"] == 0


async def test_token_request_carries_the_client_credentials_grant(base_url: str, sim: BusinessCentralSimulator) -> None:
    async with httpx.AsyncClient() as http:
        form = {"grant_type": "client_credentials", "client_id": "crossdock-app", "client_secret": "s3cret"}
        ok = await http.post(f"{base_url}/{TENANT}/oauth2/v2.0/token", data={**form, "scope": SCOPE})
        bad_scope = await http.post(f"{base_url}/{TENANT}/oauth2/v2.0/token", data={**form, "scope": "api://x"})
        no_token = await http.get(f"{base_url}/v2.0/{TENANT}/{ENV}/api/v2.0/companies")
    assert ok.status_code == 200
    assert ok.json()["token_type"] == "Bearer" and ok.json()["expires_in"] == 3599
    assert bad_scope.status_code == 400 and bad_scope.json()["error"] == "invalid_scope"
    assert no_token.status_code == 401
    assert no_token.json()["error"]["code"] == "Authentication_InvalidCredentials"


async def test_token_expired_on_the_server_is_replaced_transparently(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    # given a client holding a token
    assert (await bc.get_item_by_number("1000")) is not None
    # when the server's clock passes the token's expiry (the client's cache still thinks it is valid)
    sim.advance_clock(4000)
    item = await bc.get_item_by_number("1001")
    # then the 401 made the client fetch a second token and the call succeeded
    assert item is not None and item["displayName"] == "Helmet"
    assert sim.counters()["tokens_issued"] == 2
    assert bc.tokens.fetched == 2


async def test_token_is_refreshed_before_it_expires(base_url: str, sim: BusinessCentralSimulator) -> None:
    sim.configure(token_lifetime_s=1)
    clock = FakeClock()
    async with make_client(base_url, clock=clock) as client:
        await client.get_item_by_number("1000")
        await client.get_item_by_number("1000")
        clock.advance(1.0)
        await client.get_item_by_number("1000")
    assert sim.counters()["tokens_issued"] == 2


# -- paging ----------------------------------------------------------------------------------------
async def test_paging_over_1050_items_yields_each_exactly_once(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator, base_url: str
) -> None:
    sim.seed_items(COMPANY, [{"number": f"P{i:05d}", "displayName": f"Part {i}"} for i in range(1050)])
    numbers = [row["number"] async for row in bc.list("items", filter="startswith(number,'P')")]
    assert len(numbers) == 1050
    assert len(set(numbers)) == 1050
    assert numbers == sorted(numbers)
    # and the server-driven nextLink keeps the mount prefix
    token = await bc.tokens.get()
    async with httpx.AsyncClient() as http:
        page = (await http.get(f"{bc.company_url}/items", headers={"Authorization": f"Bearer {token}"})).json()
    assert len(page["value"]) == 100
    assert page["@odata.nextLink"].startswith(f"{base_url}/v2.0/{TENANT}/{ENV}/api/v2.0/companies({COMPANY})/items?")
    assert page["@odata.context"] == f"{base_url}/v2.0/{TENANT}/{ENV}/api/v2.0/$metadata#companies({COMPANY})/items"


async def test_top_and_prefer_maxpagesize_are_honoured(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    sim.seed_items(COMPANY, [{"number": f"P{i:05d}"} for i in range(300)])
    limited = [row async for row in bc.list("items", filter="startswith(number,'P')", top=250, page_size=40)]
    assert [r["number"] for r in limited] == [f"P{i:05d}" for i in range(250)]
    token = await bc.tokens.get()
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{bc.company_url}/items",
            headers={"Authorization": f"Bearer {token}", "Prefer": "odata.maxpagesize=7"},
            params={"$select": "number,displayName"},
        )
    assert len(response.json()["value"]) == 7
    assert set(response.json()["value"][0]) == {"@odata.etag", "id", "number", "displayName"}
    assert response.headers["preference-applied"] == "odata.maxpagesize=7"


async def test_rows_inserted_while_paging_cause_no_duplicates(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    sim.seed_items(COMPANY, [{"number": f"P{i:05d}"} for i in range(0, 400, 2)])
    seen: list[str] = []
    async for row in bc.list("items", filter="startswith(number,'P')", page_size=50):
        seen.append(row["number"])
        if len(seen) == 60:  # mid-way, someone inserts rows before and after the cursor
            sim.seed_items(COMPANY, [{"number": "P00001"}, {"number": "P00399"}])
    assert len(seen) == len(set(seen)) == 201
    assert "P00399" in seen and "P00001" not in seen


# -- limits ----------------------------------------------------------------------------------------
async def test_sustained_load_never_exceeds_the_sliding_window(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    sim.configure(rate_limit=25, rate_window_s=1.0)
    results = await asyncio.gather(*(bc.get_item_by_number("1000") for _ in range(60)))
    counters = sim.counters()
    assert all(r is not None and r["number"] == "1000" for r in results)
    assert counters["requests"] == 60
    assert counters["max_window_count"] == 25
    assert counters["throttled"] > 0


async def test_concurrency_is_capped_at_five_with_the_rest_queued(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    sim.configure(latency_ms=20)
    results = await asyncio.gather(*(bc.get_item_by_number("1001") for _ in range(30)))
    counters = sim.counters()
    assert len(results) == 30 and all(r is not None for r in results)
    assert counters["max_in_flight"] == 5
    assert counters["max_queued"] > 0
    assert counters["throttled"] == 0


async def test_a_full_queue_answers_429_and_the_client_backs_off(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    sim.configure(latency_ms=20, max_concurrent=2, max_queued=1)
    results = await asyncio.gather(*(bc.get_item_by_number("1001") for _ in range(12)))
    counters = sim.counters()
    assert all(r is not None for r in results)
    assert counters["max_in_flight"] == 2
    assert counters["throttled"] > 0


async def test_acquire_hook_runs_before_every_attempt(base_url: str, sim: BusinessCentralSimulator) -> None:
    sim.corrupt_next("html_error", count=2)  # a gateway error page, twice
    counter = Counter()
    async with make_client(base_url, acquire=counter) as client:
        await client.get_item_by_number("1000")
    assert counter.calls == 3  # two failed attempts + the one that succeeded


# -- idempotent upsert -----------------------------------------------------------------------------
async def test_upsert_twice_creates_one_order(bc: BusinessCentralClient, sim: BusinessCentralSimulator) -> None:
    body = order_body("#1001 O'Brien", ("1000", 2), ("1001", 1))
    first = await bc.upsert_sales_order(body)
    second = await bc.upsert_sales_order(body)
    orders = sim.records(COMPANY, "salesOrders")
    assert (first.created, second.created) == (True, False)
    assert first.order["id"] == second.order["id"]
    assert len(orders) == 1
    assert orders[0]["number"] == "S-ORD101001"
    assert orders[0]["totalAmountIncludingTax"] == 225.5


async def test_upsert_without_external_number_is_rejected_before_any_call(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    with pytest.raises(ConnectorError) as caught:
        await bc.upsert_sales_order({"customerNumber": "C0001"})
    assert caught.value.kind is FailureKind.CONFIG
    assert sim.counters()["requests"] == 0


async def test_upsert_after_a_lost_response_does_not_duplicate(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    # given the order was created but the response was replaced by a gateway error page
    sim.corrupt_next("html_error", method="POST")
    result = await bc.upsert_sales_order(order_body("#2002", ("1001", 1)))
    # then the client looked the order up again instead of creating a second one
    assert result.created is False
    assert len(sim.records(COMPANY, "salesOrders")) == 1


# -- ETags -----------------------------------------------------------------------------------------
async def test_stale_etag_is_re_read_and_no_update_is_lost(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    customer = await bc.find_one("customers", "number eq 'C0001'")
    assert customer is not None
    stale = customer["@odata.etag"]
    await bc.update("customers", customer["id"], {"email": "ap@adatum.example"})
    updated = await bc.update("customers", customer["id"], {"phoneNumber": "+1 555 0100"}, etag=stale)
    assert (updated["email"], updated["phoneNumber"]) == ("ap@adatum.example", "+1 555 0100")
    assert updated["@odata.etag"] != stale
    assert sim.counters()["etag_conflicts"] == 1


async def test_concurrent_updates_to_different_fields_all_survive(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    sim.configure(latency_ms=10)
    customer = await bc.find_one("customers", "number eq 'C0001'")
    assert customer is not None
    changes = {
        "addressLine1": "1 Main St",
        "addressLine2": "Suite 2",
        "city": "Redmond",
        "state": "WA",
        "country": "US",
        "postalCode": "98052",
        "phoneNumber": "+1 555 0101",
        "website": "adatum.example",
    }
    await asyncio.gather(*(bc.update("customers", customer["id"], {k: v}) for k, v in changes.items()))
    final = await bc.get("customers", customer["id"])
    assert {k: final[k] for k in changes} == changes
    assert sim.counters()["etag_conflicts"] >= 1


async def test_patch_without_if_match_or_with_a_stale_etag_is_refused(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    customer = await bc.find_one("customers", "number eq 'C0001'")
    assert customer is not None
    url = f"{bc.company_url}/customers({customer['id']})"
    auth = {"Authorization": f"Bearer {await bc.tokens.get()}"}
    async with httpx.AsyncClient() as http:
        missing = await http.patch(url, headers=auth, json={"city": "X"})
        stale = await http.patch(url, headers={**auth, "If-Match": 'W/"JzE7b2xkOyc="'}, json={"city": "X"})
        star = await http.patch(url, headers={**auth, "If-Match": "*"}, json={"city": "Y"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "BadRequest_InvalidToken")
    assert (stale.status_code, stale.json()["error"]["code"]) == (409, "Request_EntityChanged")
    assert stale.json()["error"]["message"].startswith("Another user has already changed the record.")
    assert (star.status_code, star.json()["city"]) == (200, "Y")


# -- documents and actions -------------------------------------------------------------------------
async def test_ship_and_invoice_then_credit_memo_moves_stock_and_balance(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    order = (await bc.upsert_sales_order(order_body("#3003", ("1000", 3)))).order
    await bc.ship_and_invoice(order["id"])
    invoice = await bc.find_one("salesInvoices", "externalDocumentNumber eq '#3003'")
    shipment = await bc.find_one("salesShipments", "orderNumber eq 'S-ORD101001'")
    assert invoice is not None and invoice["totalAmountIncludingTax"] == 300.0 and invoice["status"] == "Open"
    assert shipment is not None and shipment["externalDocumentNumber"] == "#3003"
    assert sim.records(COMPANY, "salesOrders") == []
    assert (await bc.get_item_by_number("1000") or {})["inventory"] == 7.0

    memo = await bc.create_credit_memo(
        {
            "customerNumber": "C0001",
            "invoiceId": invoice["id"],
            "salesCreditMemoLines": [{"lineObjectNumber": "1000", "quantity": 1}],
        }
    )
    assert (memo["number"], memo["status"], memo["totalAmountIncludingTax"]) == ("S-CR104001", "Draft", 100.0)
    await bc.post_credit_memo(memo["id"])
    assert (await bc.get("salesCreditMemos", memo["id"]))["status"] == "Open"
    assert (await bc.get_item_by_number("1000") or {})["inventory"] == 8.0
    customer = await bc.find_one("customers", "number eq 'C0001'")
    assert customer is not None and customer["balanceDue"] == 200.0


async def test_lines_can_be_added_and_expanded(bc: BusinessCentralClient, sim: BusinessCentralSimulator) -> None:
    order = (await bc.upsert_sales_order(order_body("#4004", ("1001", 2)))).order
    line = await bc.create(f"salesOrders({order['id']})/salesOrderLines", {"lineObjectNumber": "SVC-1", "quantity": 1})
    expanded = await bc.get("salesOrders", order["id"], expand="salesOrderLines")
    assert line["sequence"] == 20000
    assert [ln["lineObjectNumber"] for ln in expanded["salesOrderLines"]] == ["1001", "SVC-1"]
    assert expanded["totalAmountIncludingTax"] == 66.0
    items = await bc.get_items_by_number(["1000", "1001", "NOPE"])
    assert sorted(items) == ["1000", "1001"]


async def test_control_api_seeds_and_reports(base_url: str, sim: BusinessCentralSimulator) -> None:
    async with httpx.AsyncClient(base_url=f"{base_url}/_control") as http:
        company = (await http.post("/companies", json={"name": "Second Co"})).json()["id"]
        seeded = await http.post(f"/companies/{company}/items", json=[{"number": "X1", "inventory": 3}])
        stock = await http.put(f"/companies/{company}/inventory", json={"itemNumber": "X1", "quantity": 9})
        faults = await http.post("/faults", json={"throttle_burst": 1, "paths": ["/api/v2.0/"]})
        cleared = await http.delete("/faults")
        counters = (await http.get("/counters")).json()
    assert seeded.json()["created"] == 1 and stock.json()["inventory"] == 9.0
    assert (faults.status_code, cleared.status_code) == (200, 200)
    assert sim.records(company, "items")[0]["inventory"] == 9.0
    assert counters == {**sim.counters(), "requests": 0}
