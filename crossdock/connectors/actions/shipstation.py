"""ShipStation engine actions: create/update an order (upsert on orderKey) and fetch SHIP_NOTIFY shipments.

`get_shipments` fetches a `resource_url` only when it lies under the connection's configured API
base URL: the request carries the account's Basic credentials, so a forged URL must never be
followed elsewhere.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from crossdock.connectors.actions.pool import PooledClient, RateBudget
from crossdock.connectors.actions.spec import ActionInput, ActionOutput, ConnectorAction
from crossdock.connectors.builtin import ShipStationConfig, ShipStationSecrets
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.shipstation.client import ShipStationClient
from crossdock.engine.actions import ActionContext

SYSTEM = "shipstation"


def build_client(config: Any, secrets: Any, *, acquire: Any, budget: RateBudget) -> ShipStationClient:
    assert isinstance(config, ShipStationConfig) and isinstance(secrets, ShipStationSecrets)
    return ShipStationClient(secrets.api_key, secrets.api_secret, base_url=config.base_url, acquire=acquire)


def _ss(conn: PooledClient) -> ShipStationClient:
    assert isinstance(conn.client, ShipStationClient)
    return conn.client


def same_api(url: str, base_url: str) -> bool:
    """Whether `url` is an absolute http(s) URL on `base_url`'s origin and under its path."""
    parts, base = urlsplit(url), urlsplit(base_url)
    if parts.scheme not in ("http", "https") or (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
        return False
    return parts.path.startswith(base.path.rstrip("/") + "/")


class _Camel(BaseModel):
    """ShipStation's field names are camelCase; inputs accept snake_case or camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Address(_Camel):
    name: str
    company: str | None = None
    street1: str | None = None
    street2: str | None = None
    street3: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = Field(None, min_length=2, max_length=2)
    phone: str | None = None
    residential: bool | None = None


class Item(_Camel):
    line_item_key: str | None = None
    sku: str | None = None
    name: str
    quantity: int = Field(gt=0)
    unit_price: float | None = Field(None, ge=0)


class CreateOrderIn(ActionInput, _Camel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    order_number: str = Field(min_length=1, max_length=50)
    order_key: str = Field(min_length=1, max_length=200, description="The upsert key (e.g. the Shopify order id).")
    order_date: str = Field(description="ISO date-time of the order.")
    payment_date: str | None = None
    order_status: Literal["awaiting_payment", "awaiting_shipment", "on_hold", "cancelled"] = "awaiting_shipment"
    customer_email: str | None = None
    bill_to: Address
    ship_to: Address
    items: list[Item] = Field(default_factory=list)
    amount_paid: float | None = None
    tax_amount: float | None = None
    shipping_amount: float | None = None


class CreateOrderOut(ActionOutput):
    order_id: int
    order_key: str
    order_number: str
    order_status: str


async def create_order(ctx: ActionContext, conn: PooledClient, data: CreateOrderIn) -> CreateOrderOut:
    body = data.model_dump(by_alias=True, exclude_none=True, exclude={"connection"})
    made = await _ss(conn).create_or_update_order(body)
    return CreateOrderOut(
        order_id=int(made["orderId"]),
        order_key=str(made["orderKey"]),
        order_number=str(made["orderNumber"]),
        order_status=str(made["orderStatus"]),
    )


class ShipmentsIn(ActionInput):
    resource_url: str = Field(min_length=1, max_length=2000, description="The SHIP_NOTIFY `resource_url`.")


class ShipmentsOut(ActionOutput):
    shipments: list[dict[str, Any]]


async def get_shipments(ctx: ActionContext, conn: PooledClient, data: ShipmentsIn) -> ShipmentsOut:
    client = _ss(conn)
    if not same_api(data.resource_url, client.base_url):
        raise ConnectorError(
            "The resource_url is not on this connection's ShipStation API base URL; refusing to send the "
            "account's credentials there.",
            kind=FailureKind.AUTH,
            category=FailureCategory.AUTH,
            system=SYSTEM,
            vendor_code="foreign_resource_url",
        )
    return ShipmentsOut(shipments=await client.get_shipments(data.resource_url))


ACTIONS = [
    ConnectorAction(
        "shipstation.create_order", SYSTEM, CreateOrderIn, CreateOrderOut, create_order, "orderKey (upsert)",
        "Create or replace an order in ShipStation.",
    ),
    ConnectorAction(
        "shipstation.get_shipments", SYSTEM, ShipmentsIn, ShipmentsOut, get_shipments, "pure read",
        "Fetch the shipments a SHIP_NOTIFY resource_url points at (only on the connection's API).", effect=False,
    ),
]  # fmt: skip
