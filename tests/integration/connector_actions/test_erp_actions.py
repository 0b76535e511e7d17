"""Business Central and NetSuite actions against their simulators over real HTTP: happy paths,
idempotency (one ERP record however often a step is replayed) and classified failures."""

from __future__ import annotations

from typing import Any

import pytest

from crossdock.bootstrap import Container
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.sandbox.businesscentral_actions import ship_and_invoice
from crossdock.connectors.sandbox.server import Sandbox
from crossdock.engine.core import Engine

from .conftest import NS_ACCOUNT, SandboxServer, action_step, bc_connection, call, ns_connection, run_flow

COMPANY = "7c9a5b1e-0000-4000-8000-00000000c0de"
BC_ITEMS = [
    {"number": "SKU-1", "displayName": "Bicycle", "unitPrice": 100.0, "inventory": 10.0},
    {"number": "SKU-2", "displayName": "Helmet", "unitPrice": 25.5, "inventory": 100.0},
]
BC_CUSTOMERS = [
    {"number": "C0001", "displayName": "Adatum", "email": "ap@adatum.test", "creditLimit": 0.0},
    {"number": "C0002", "displayName": "Trey Research", "creditLimit": 500.0, "balanceDue": 450.0},
]


@pytest.fixture
async def bc(
    container: Container, merchant: str, sandbox: Sandbox, sandbox_server: SandboxServer, engine: Engine
) -> str:
    sandbox.businesscentral.add_company("CRONUS", COMPANY)
    sandbox.businesscentral.seed_items(COMPANY, [dict(i) for i in BC_ITEMS])
    sandbox.businesscentral.seed_customers(COMPANY, [dict(c) for c in BC_CUSTOMERS])
    return await bc_connection(container, merchant, sandbox_server.url, COMPANY)


@pytest.fixture
async def ns(
    container: Container, merchant: str, sandbox: Sandbox, sandbox_server: SandboxServer, engine: Engine
) -> str:
    sandbox.netsuite.seed_customers(
        NS_ACCOUNT, [{"id": "501", "externalId": "CUST-1", "companyName": "Adatum", "creditLimit": 10000}]
    )
    sandbox.netsuite.seed_items(
        NS_ACCOUNT,
        [
            {"id": "1009", "externalId": "SKU-1", "itemId": "SKU-1", "displayName": "Bicycle", "basePrice": 20.0},
            {"id": "1010", "externalId": "SKU-2", "itemId": "SKU-2", "displayName": "Helmet", "basePrice": 5.5},
        ],
    )
    return await ns_connection(container, merchant, sandbox_server.url)


def bc_order(conn: str, external: str = "#1001", customer: str = "C0001", qty: float = 2) -> dict[str, Any]:
    return {
        "connection": conn,
        "external_document_number": external,
        "customer_number": customer,
        "lines": [{"item_number": "SKU-1", "quantity": qty}, {"item_number": "SKU-2", "quantity": 1, "unit_price": 20}],
    }


# -- Business Central -------------------------------------------------------------------------------
async def test_bc_find_items_and_unknown_sku(engine: Engine, merchant: str, bc: str) -> None:
    out = await call(engine, merchant, "businesscentral.find_items", {"connection": bc, "skus": ["SKU-1", "SKU-2"]})
    assert {n: (i["unit_price"], i["inventory"]) for n, i in out["items"].items()} == {
        "SKU-1": (100.0, 10.0),
        "SKU-2": (25.5, 100.0),
    }
    assert out["missing"] == []
    with pytest.raises(ConnectorError) as caught:
        await call(engine, merchant, "businesscentral.find_items", {"connection": bc, "skus": ["SKU-1", "NOPE"]})
    assert (caught.value.kind, caught.value.category, caught.value.details["missing"]) == (
        FailureKind.DATA,
        FailureCategory.SKU_NOT_FOUND,
        ["NOPE"],
    )


async def test_bc_upsert_customer_creates_then_updates(
    engine: Engine, merchant: str, bc: str, sandbox: Sandbox
) -> None:
    data = {"connection": bc, "email": "ops@fabrikam.test", "display_name": "Fabrikam", "city": "Oslo"}
    created = await call(engine, merchant, "businesscentral.upsert_customer", data)
    same = await call(engine, merchant, "businesscentral.upsert_customer", data)
    moved = await call(engine, merchant, "businesscentral.upsert_customer", {**data, "city": "Bergen"})

    assert (created["created"], same["created"], same["updated"], moved["updated"]) == (True, False, False, True)
    assert created["id"] == same["id"] == moved["id"]
    rows = [c for c in sandbox.businesscentral.records(COMPANY, "customers") if c["email"] == "ops@fabrikam.test"]
    assert [(c["displayName"], c["city"]) for c in rows] == [("Fabrikam", "Bergen")]


async def test_bc_sales_order_is_upserted_once(engine: Engine, merchant: str, bc: str, sandbox: Sandbox) -> None:
    first = await call(engine, merchant, "businesscentral.upsert_sales_order", bc_order(bc), key="a")
    replay = await call(engine, merchant, "businesscentral.upsert_sales_order", bc_order(bc), key="a")

    assert (first["created"], replay["created"], replay["id"]) == (True, False, first["id"])
    assert (first["external_document_number"], first["total_amount_including_tax"]) == ("#1001", 220.0)
    orders = sandbox.businesscentral.records(COMPANY, "salesOrders")
    assert [o["externalDocumentNumber"] for o in orders] == ["#1001"]


async def test_bc_insufficient_inventory_and_credit_hold_are_classified(engine: Engine, merchant: str, bc: str) -> None:
    with pytest.raises(ConnectorError) as short:
        await call(engine, merchant, "businesscentral.upsert_sales_order", bc_order(bc, "#2001", qty=11))
    with pytest.raises(ConnectorError) as hold:
        await call(engine, merchant, "businesscentral.upsert_sales_order", bc_order(bc, "#2002", customer="C0002"))

    assert (short.value.kind, short.value.category) == (FailureKind.DATA, FailureCategory.INSUFFICIENT_INVENTORY)
    assert (hold.value.kind, hold.value.category) == (FailureKind.DATA, FailureCategory.CREDIT_HOLD)


async def test_bc_credit_memo_posted_once_and_shipments(
    engine: Engine, merchant: str, bc: str, sandbox: Sandbox
) -> None:
    order = await call(engine, merchant, "businesscentral.upsert_sales_order", bc_order(bc, "#3001"))
    store = sandbox.businesscentral.store
    ship_and_invoice(store, store.company(COMPANY), order["id"])  # what posting in BC does
    memo = {**bc_order(bc, "RMA-3001", qty=1), "post": True}

    first = await call(engine, merchant, "businesscentral.create_credit_memo", memo)
    again = await call(engine, merchant, "businesscentral.create_credit_memo", memo)
    shipments = await call(engine, merchant, "businesscentral.get_shipments", {"connection": bc, "value": "#3001"})

    assert (first["created"], first["status"], again["created"], again["id"]) == (True, "Open", False, first["id"])
    assert len(sandbox.businesscentral.records(COMPANY, "salesCreditMemos")) == 1
    assert [(s["externalDocumentNumber"], s["orderNumber"]) for s in shipments["shipments"]] == [
        ("#3001", order["number"])
    ]
    assert [ln["lineObjectNumber"] for ln in shipments["shipments"][0]["salesShipmentLines"]] == ["SKU-1", "SKU-2"]


async def test_bc_failure_reaches_the_run_with_its_category(
    container: Container, engine: Engine, merchant: str, bc: str
) -> None:
    steps = [action_step("items", "businesscentral.find_items", {"connection": bc, "skus": "=input.skus"})]
    run = await run_flow(container, engine, merchant, steps, {"skus": ["SKU-1", "GHOST"]})

    assert run["status"] == "needs_attention"  # a terminal data failure waits for the exception desk
    error = run["error"]
    assert (error["kind"], error["category"], error["system"], error["step"]) == (
        "data",
        "sku_not_found",
        "businesscentral",
        "items",
    )


# -- NetSuite ---------------------------------------------------------------------------------------
async def test_ns_find_items_and_unknown_sku(engine: Engine, merchant: str, ns: str) -> None:
    out = await call(engine, merchant, "netsuite.find_items", {"connection": ns, "skus": ["SKU-2", "SKU-1"]})
    assert {k: (v["id"], v["baseprice"]) for k, v in out["items"].items()} == {
        "SKU-1": ("1009", 20.0),
        "SKU-2": ("1010", 5.5),
    }
    with pytest.raises(ConnectorError) as caught:
        await call(engine, merchant, "netsuite.find_items", {"connection": ns, "skus": ["SKU-9"]})
    assert (caught.value.kind, caught.value.category) == (FailureKind.DATA, FailureCategory.SKU_NOT_FOUND)


async def test_ns_upserts_by_external_id(engine: Engine, merchant: str, ns: str, sandbox: Sandbox) -> None:
    customer = {"connection": ns, "external_id": "shopify-c-9", "company_name": "Fabrikam", "email": "a@f.test"}
    c1 = await call(engine, merchant, "netsuite.upsert_customer", customer)
    c2 = await call(engine, merchant, "netsuite.upsert_customer", {**customer, "email": "b@f.test"})
    order = {
        "connection": ns,
        "external_id": "shopify-o-1001",
        "customer": {"external_id": "shopify-c-9"},
        "lines": [{"item": {"external_id": "SKU-1"}, "quantity": 2}],
        "other_ref_num": "#1001",
    }
    o1 = await call(engine, merchant, "netsuite.upsert_sales_order", order)
    o2 = await call(engine, merchant, "netsuite.upsert_sales_order", order)

    assert c1["id"] == c2["id"]
    assert [
        c["email"] for c in sandbox.netsuite.records(NS_ACCOUNT, "customer") if c.get("externalId") == "shopify-c-9"
    ] == ["b@f.test"]
    assert (o1["id"], o1["tran_id"], o1["total"]) == (o2["id"], o2["tran_id"], 40.0)
    assert [o["externalId"] for o in sandbox.netsuite.records(NS_ACCOUNT, "salesOrder")] == ["shopify-o-1001"]


async def test_ns_unknown_item_on_order_is_sku_not_found(engine: Engine, merchant: str, ns: str) -> None:
    order = {
        "connection": ns,
        "external_id": "o-2",
        "customer": {"id": "501"},
        "lines": [{"item": {"external_id": "SKU-404"}, "quantity": 1}],
    }
    with pytest.raises(ConnectorError) as caught:
        await call(engine, merchant, "netsuite.upsert_sales_order", order)
    assert (caught.value.kind, caught.value.category, caught.value.vendor_code) == (
        FailureKind.DATA,
        FailureCategory.SKU_NOT_FOUND,
        "INVALID_KEY_OR_REF",
    )


async def test_ns_created_records_once_per_idempotency_key(
    engine: Engine, merchant: str, ns: str, sandbox: Sandbox
) -> None:
    body = {"connection": ns, "customer": {"id": "501"}, "lines": [{"item": {"id": "1010"}, "quantity": 2}]}
    memo1 = await call(engine, merchant, "netsuite.create_credit_memo", body, key="refund-1")
    memo2 = await call(engine, merchant, "netsuite.create_credit_memo", body, key="refund-1")
    memo3 = await call(engine, merchant, "netsuite.create_credit_memo", body, key="refund-2")
    rma = await call(
        engine, merchant, "netsuite.create_return_authorization", {**body, "external_id": "ret-5"}, key="x"
    )
    rma_again = await call(
        engine, merchant, "netsuite.create_return_authorization", {**body, "external_id": "ret-5"}, key="y"
    )

    assert (memo1["created"], memo2["created"], memo2["id"], memo1["total"]) == (True, False, memo1["id"], 11.0)
    assert memo3["id"] != memo1["id"]
    assert len(sandbox.netsuite.records(NS_ACCOUNT, "creditMemo")) == 2
    assert (rma["external_id"], rma_again["id"], rma_again["created"]) == ("ret-5", rma["id"], False)
    assert len(sandbox.netsuite.records(NS_ACCOUNT, "returnAuthorization")) == 1


async def test_ns_transform_replay_resolves_the_first_record(
    engine: Engine, merchant: str, ns: str, sandbox: Sandbox
) -> None:
    order = {
        "connection": ns,
        "external_id": "o-7",
        "customer": {"id": "501"},
        "lines": [{"item": {"id": "1009"}, "quantity": 1}],
    }
    so = await call(engine, merchant, "netsuite.upsert_sales_order", order)
    data = {"connection": ns, "source_type": "salesOrder", "source_id": so["id"], "target_type": "itemFulfillment"}

    first = await call(engine, merchant, "netsuite.transform", data, key="ship-1")
    replay = await call(engine, merchant, "netsuite.transform", data, key="ship-1")

    assert replay == first
    assert [f["createdFrom"]["id"] for f in sandbox.netsuite.records(NS_ACCOUNT, "itemFulfillment")] == [so["id"]]
