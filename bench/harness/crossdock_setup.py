"""Configure Crossdock for the benchmark the way a user would: a merchant, its Shopify connection and a
published flow (Shopify `orders/create` webhook → JMESPath map → `http.request` to the ERP recorder).

Run by the harness with CROSSDOCK_DATABASE_URL and CROSSDOCK_HOME set; prints the connection id.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from crossdock.bootstrap import build_container
from crossdock.connections import service as connections
from crossdock.connections.schemas import ConnectionCreate
from crossdock.core.context import Actor
from crossdock.engine import service as flows
from crossdock.engine.core import engine_of
from crossdock.engine.schemas import FlowCreate
from crossdock.tenants import service as tenants
from crossdock.tenants.schemas import MerchantCreate, PartnerCreate

# The mapping of bench/harness/orders.py:map_order, in the flow language (JMESPath, no code).
SALES_ORDER = {
    "external_id": "=to_string(input.id)",
    "order_number": "=input.name",
    "order_date": "=input.created_at",
    "customer_email": "=input.email",
    "customer_name": "=join(' ', [input.customer.first_name || '', input.customer.last_name || ''])",
    "currency": "=input.currency",
    "lines": (
        "=input.line_items[].{sku: sku, description: title, quantity: quantity, unit_price: price, "
        "line_total: fixed(multiply(to_number(price), quantity), `2`)}"
    ),
    "subtotal": "=fixed(sum(input.line_items[].multiply(to_number(price), quantity)), `2`)",
    "discount": "=fixed(sum(map(&to_number(@), input.line_items[].discount_allocations[].amount)), `2`)",
    "total": (
        "=fixed(subtract(sum(input.line_items[].multiply(to_number(price), quantity)), "
        "sum(map(&to_number(@), input.line_items[].discount_allocations[].amount))), `2`)"
    ),
}


def definition(connection_id: str, erp_url: str) -> dict[str, object]:
    return {
        "name": "Shopify order to ERP (benchmark)",
        "triggers": [
            {"type": "webhook", "verifier": "shopify", "connection_id": connection_id, "topic": "orders/create"}
        ],
        "steps": [
            {"id": "sales_order", "type": "map", "output": SALES_ORDER},
            {
                "id": "erp",
                "type": "action",
                "action": "http.request",
                "key": "=to_string(input.id)",
                "retry": {"max_attempts": 10, "backoff_s": 0.2, "max_backoff_s": 5},
                "input": {
                    "method": "POST",
                    "url": erp_url,
                    "json": "=steps.sales_order",
                    "headers": {"Idempotency-Key": "shopify-order-{{ input.id }}"},
                },
            },
        ],
    }


async def setup(erp_url: str, secret: str) -> str:
    container = build_container()
    actor = Actor.system()
    try:
        async with container.db.session(actor.scope) as s:
            partner = await tenants.create_partner(s, actor, PartnerCreate(name="Bench Partner"))
            merchant = await tenants.create_merchant(s, actor, MerchantCreate(partner_id=partner.id, name="Bench Shop"))
            conn = await connections.create_connection(
                s,
                actor,
                ConnectionCreate(
                    merchant_id=merchant.id,
                    system="shopify",
                    name="bench-shop",
                    config={"shop_domain": "bench-shop.myshopify.com", "webhook_max_age_s": None},
                    secrets={"access_token": "shpat_bench", "webhook_secrets": [secret]},
                ),
                registry=container.connectors,
                box=container.secrets,
            )
        engine = engine_of(container)
        async with container.db.session(actor.scope) as s:
            body = FlowCreate(
                merchant_id=merchant.id,
                key="bench-orders",
                name="Bench orders",
                definition=definition(conn.id, erp_url),
            )
            flow, version = await flows.create_flow(s, actor, engine, body)
            await flows.publish_version(s, actor, engine, flow.id, version.number)
        return conn.id
    finally:
        await container.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--erp-url", required=True)
    p.add_argument("--shopify-secret", required=True)
    args = p.parse_args()
    print(json.dumps({"connection_id": asyncio.run(setup(args.erp_url, args.shopify_secret))}))


if __name__ == "__main__":
    main()
