"""The demo's simulated systems: Aurora's and Cobalt's shops, Business Central, NetSuite and ShipStation.

`seed_sandbox` fills a fresh `Sandbox` with the same data on every start (the simulators live in
memory): each merchant's Shopify catalog, the ERP items with the same SKUs and prices, ERP stock,
Cobalt's B2B customers with credit limits in NetSuite, and the credentials the demo connections use.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from crossdock.connectors.sandbox.server import Sandbox
from crossdock.connectors.sandbox.shopify_orders import CUSTOMER_ID_BASE, make_product

# Credentials the simulators accept and the demo connections carry (encrypted at rest).
AURORA_SHOP = "aurora-outfitters.myshopify.com"
AURORA_TOKEN = "shpat_demo_aurora_0000000000000"
AURORA_WEBHOOK_SECRET = "demo-aurora-webhook-secret"
COBALT_SHOP = "cobalt-wholesale.myshopify.com"
COBALT_TOKEN = "shpat_demo_cobalt_0000000000000"
COBALT_WEBHOOK_SECRET = "demo-cobalt-webhook-secret"
BC_TENANT = "northwind-demo"
BC_CLIENT = ("aurora-crossdock-app", "aurora-bc-client-secret")
BC_COMPANY_ID = "a0a0a0a0-0000-4000-8000-00000000a0a0"
NS_ACCOUNT = "7654321-sb1"
NS_CREDENTIALS: dict[str, str] = {
    "consumer_key": "cobalt-ck",
    "consumer_secret": "cobalt-cs",
    "token_id": "cobalt-tk",
    "token_secret": "cobalt-ts",
}
SHIPSTATION_WEBHOOK_TOKEN = "demo-shipstation-hook-0123456789"

AURORA_PRODUCTS = range(100, 124)  # product seeds: 24 products × 2 sizes
AURORA_OUT_OF_STOCK = 190  # sold in Shopify, no stock in Business Central
COBALT_PRODUCTS = range(300, 316)
ERP_STOCK = 1_000_000
NORMAL_CREDIT_LIMIT = 50_000_000
TIGHT_CREDIT_LIMIT = 25  # every order of this customer needs a credit release


@dataclass(frozen=True)
class B2BCustomer:
    """A Cobalt wholesale account (the Shopify customer and its NetSuite twin)."""

    shopify_id: int
    company: str
    email: str
    credit_limit: int

    @property
    def external_id(self) -> str:
        return f"shopify-{self.shopify_id}"


_COMPANIES = [
    "Harbor Supply Co",
    "Pinecrest Outdoor",
    "Summit Retail Group",
    "Bluewater Traders",
    "Ironwood Goods",
    "Maple & Vine",
    "Northgate Stores",
]
B2B_CUSTOMERS = [
    B2BCustomer(CUSTOMER_ID_BASE + 900_000 + i, name, f"buyer@{name.split()[0].lower()}.example", NORMAL_CREDIT_LIMIT)
    for i, name in enumerate(_COMPANIES)
]
CREDIT_HOLD_CUSTOMER = B2BCustomer(
    CUSTOMER_ID_BASE + 900_099, "Overdrawn Outfitters", "ap@overdrawn.example", TIGHT_CREDIT_LIMIT
)


@dataclass
class DemoCatalog:
    """What the traffic generator may sell, per merchant (variant dicts as `make_order` takes them)."""

    aurora: list[dict[str, Any]] = field(default_factory=list)
    aurora_out_of_stock: list[dict[str, Any]] = field(default_factory=list)
    cobalt: list[dict[str, Any]] = field(default_factory=list)

    def erp_price(self, sku: str) -> Decimal:
        for variant in (*self.aurora, *self.aurora_out_of_stock, *self.cobalt):
            if variant["sku"] == sku:
                return Decimal(variant["price"])
        raise KeyError(sku)


def _variants(products: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**v, "product_title": p["title"]} for p in products for v in p["variants"]]


def _cobalt_product(seed: int) -> dict[str, Any]:
    """Cobalt's SKUs start with `CB-` so the two catalogs never collide."""
    product = copy.deepcopy(make_product(seed))
    for variant in product["variants"]:
        variant["sku"] = "CB" + variant["sku"][2:]
    return product


def seed_sandbox(sandbox: Sandbox) -> DemoCatalog:
    """Credentials, catalogs, ERP items, stock and B2B customers; the same data on every call."""
    aurora_products = [make_product(seed) for seed in AURORA_PRODUCTS]
    out_of_stock = [make_product(AURORA_OUT_OF_STOCK)]
    cobalt_products = [_cobalt_product(seed) for seed in COBALT_PRODUCTS]
    catalog = DemoCatalog(_variants(aurora_products), _variants(out_of_stock), _variants(cobalt_products))

    shopify = sandbox.shopify
    shopify.register_token(AURORA_TOKEN, AURORA_SHOP)
    shopify.register_token(COBALT_TOKEN, COBALT_SHOP)
    if not shopify.shop(AURORA_SHOP).products:
        shopify.seed_products([*aurora_products, *out_of_stock], AURORA_SHOP)
        shopify.seed_products(cobalt_products, COBALT_SHOP)

    bc = sandbox.businesscentral
    bc.add_client(*BC_CLIENT)
    if BC_COMPANY_ID not in bc.store.companies:
        bc.add_company("Aurora Outfitters", BC_COMPANY_ID)
        bc.seed_items(
            BC_COMPANY_ID,
            [
                {
                    "number": v["sku"],
                    "displayName": v["product_title"][:100],
                    "unitPrice": float(v["price"]),
                    "inventory": 0.0 if v in catalog.aurora_out_of_stock else float(ERP_STOCK),
                }
                for v in (*catalog.aurora, *catalog.aurora_out_of_stock)
            ],
        )

    ns = sandbox.netsuite
    creds = NS_CREDENTIALS
    ns.add_account(
        NS_ACCOUNT,
        consumer_key=creds["consumer_key"],
        consumer_secret=creds["consumer_secret"],
        token_id=creds["token_id"],
        token_secret=creds["token_secret"],
    )
    if not ns.records(NS_ACCOUNT, "inventoryItem"):
        ns.seed_items(
            NS_ACCOUNT,
            [
                {
                    "itemId": v["sku"],
                    "externalId": v["sku"],
                    "displayName": v["product_title"],
                    "basePrice": float(v["price"]),
                    "quantityAvailable": float(ERP_STOCK),
                }
                for v in catalog.cobalt
            ],
        )
        # Crossdock's credit approval governs, so NetSuite's own hold is off for these accounts.
        ns.seed_customers(
            NS_ACCOUNT,
            [
                {
                    "externalId": c.external_id,
                    "companyName": c.company,
                    "email": c.email,
                    "creditLimit": float(c.credit_limit),
                    "creditHoldOverride": "OFF",
                }
                for c in (*B2B_CUSTOMERS, CREDIT_HOLD_CUSTOMER)
            ],
        )
    return catalog
