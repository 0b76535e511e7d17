"""Shopify actions against the Shopify simulator over real HTTP: reads, write-back, inventory,
fulfillment, refunds, payouts, and their idempotency."""

from __future__ import annotations

from typing import Any

import pytest

from crossdock.bootstrap import Container
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.sandbox.server import Sandbox
from crossdock.connectors.sandbox.shopify_orders import DEFAULT_LOCATION_ID, make_order, make_product
from crossdock.engine.core import Engine

from .conftest import SandboxServer, action_step, call, run_flow, shopify_connection


@pytest.fixture
def shop(sandbox: Sandbox) -> dict[str, Any]:
    product = make_product(7, variant_count=2)
    sandbox.shopify.seed_products([product])
    order = make_order(3, variants=product["variants"], line_count=2, discount_percent=0)
    sandbox.shopify.seed_orders([order])
    return {"product": product, "order": order}


@pytest.fixture
async def conn(container: Container, merchant: str, sandbox_server: SandboxServer, engine: Engine) -> str:
    return await shopify_connection(container, merchant, sandbox_server.url)


async def test_get_order_reads_the_order(engine: Engine, merchant: str, conn: str, shop: dict[str, Any]) -> None:
    out = await call(engine, merchant, "shopify.get_order", {"connection": conn, "order_id": shop["order"]["id"]})
    assert out["order"]["id"] == shop["order"]["id"]
    assert out["order"]["name"] == shop["order"]["name"]
    assert [li["sku"] for li in out["order"]["line_items"]] == [li["sku"] for li in shop["order"]["line_items"]]


async def test_unknown_order_is_a_classified_not_found(engine: Engine, merchant: str, conn: str, shop: Any) -> None:
    with pytest.raises(ConnectorError) as caught:
        await call(engine, merchant, "shopify.get_order", {"connection": conn, "order_id": 42})
    assert (caught.value.kind, caught.value.category, caught.value.status) == (
        FailureKind.DATA,
        FailureCategory.NOT_FOUND,
        404,
    )


async def test_update_order_merges_and_a_replay_changes_nothing(
    engine: Engine, merchant: str, conn: str, shop: dict[str, Any], sandbox: Sandbox
) -> None:
    order_id = shop["order"]["id"]
    sandbox.shopify.shop().update_order(
        order_id, {"note_attributes": [{"name": "gift", "value": "yes"}], "tags": "vip"}
    )
    data = {"connection": conn, "order_id": order_id, "note_attributes": {"erp_order": "SO-1001"}, "add_tags": ["erp"]}

    first = await call(engine, merchant, "shopify.update_order", data)
    again = await call(engine, merchant, "shopify.update_order", data)

    expected_attrs = [{"name": "gift", "value": "yes"}, {"name": "erp_order", "value": "SO-1001"}]
    assert first == {"order_id": order_id, "note_attributes": expected_attrs, "tags": ["vip", "erp"], "changed": True}
    assert again == {**first, "changed": False}
    stored = sandbox.shopify.shop().order(order_id)
    assert (stored["note_attributes"], stored["tags"]) == (expected_attrs, "vip, erp")


async def test_set_and_adjust_inventory(engine: Engine, merchant: str, conn: str, shop: dict[str, Any]) -> None:
    item = shop["product"]["variants"][0]["inventory_item_id"]
    base = {"connection": conn, "inventory_item_id": item, "location_id": DEFAULT_LOCATION_ID}

    set_out = await call(engine, merchant, "shopify.set_inventory", {**base, "available": 12})
    adjusted = await call(engine, merchant, "shopify.adjust_inventory", {**base, "delta": -5})

    assert {k: set_out[k] for k in ("inventory_item_id", "location_id", "available")} == {
        "inventory_item_id": item,
        "location_id": DEFAULT_LOCATION_ID,
        "available": 12,
    }
    assert adjusted["available"] == 7


async def test_create_fulfillment_with_tracking_is_idempotent(
    engine: Engine, merchant: str, conn: str, shop: dict[str, Any], sandbox: Sandbox
) -> None:
    order_id = shop["order"]["id"]
    data = {"connection": conn, "order_id": order_id, "tracking_number": "1Z999", "tracking_company": "UPS"}

    first = await call(engine, merchant, "shopify.create_fulfillment", data)
    again = await call(engine, merchant, "shopify.create_fulfillment", data)

    assert first["created"] is True and again["created"] is False
    assert again == {**first, "created": False}
    stored = sandbox.shopify.shop().order(order_id)
    assert [(f["tracking_number"], f["tracking_company"]) for f in stored["fulfillments"]] == [("1Z999", "UPS")]
    assert stored["fulfillment_status"] == "fulfilled"
    with pytest.raises(ConnectorError) as caught:
        await call(engine, merchant, "shopify.create_fulfillment", {**data, "tracking_number": "1Z000"})
    assert (caught.value.kind, caught.value.category) == (FailureKind.DATA, FailureCategory.FULFILLMENT_STATE)


async def test_create_refund_once_per_key(
    engine: Engine, merchant: str, conn: str, shop: dict[str, Any], sandbox: Sandbox
) -> None:
    order = shop["order"]
    line = order["line_items"][0]
    data = {
        "connection": conn,
        "order_id": order["id"],
        "refund_line_items": [{"line_item_id": line["id"], "quantity": 1}],
        "transactions": [{"amount": "5.00"}],
        "note": "damaged",
        "refund_key": "return-77",
    }

    first = await call(engine, merchant, "shopify.create_refund", data)
    again = await call(engine, merchant, "shopify.create_refund", data)

    assert (first["amount"], first["created"], again["created"], again["refund_id"]) == (
        "5.00",
        True,
        False,
        first["refund_id"],
    )
    refunds = sandbox.shopify.shop().order(order["id"])["refunds"]
    assert len(refunds) == 1
    assert refunds[0]["note"].startswith("damaged [crossdock:")


async def test_list_payouts(engine: Engine, merchant: str, conn: str, shop: dict[str, Any]) -> None:
    out = await call(engine, merchant, "shopify.list_payouts", {"connection": conn})
    assert [(p["date"], p["status"]) for p in out["payouts"]] == [(shop["order"]["created_at"][:10], "paid")]


async def test_order_read_and_writeback_through_the_engine(
    container: Container, engine: Engine, merchant: str, conn: str, shop: dict[str, Any], sandbox: Sandbox
) -> None:
    steps = [
        action_step("order", "shopify.get_order", {"connection": conn, "order_id": "=input.id"}),
        action_step(
            "writeback",
            "shopify.update_order",
            {"connection": conn, "order_id": "=input.id", "note_attributes": {"erp_order": "=input.erp"}},
            key="=input.id",
        ),
    ]
    run = await run_flow(container, engine, merchant, steps, {"id": shop["order"]["id"], "erp": "SO-7"})

    assert run["status"] == "succeeded", run["error"]
    assert run["output"]["order"]["order"]["name"] == shop["order"]["name"]
    assert run["output"]["writeback"]["note_attributes"] == [{"name": "erp_order", "value": "SO-7"}]
    assert sandbox.shopify.shop().order(shop["order"]["id"])["note_attributes"] == [
        {"name": "erp_order", "value": "SO-7"}
    ]
