"""Business Central engine actions: item lookup (SKU validation, prices), customer and sales order upserts,
credit memos, shipments.

Idempotency: sales orders and credit memos are looked up by `externalDocumentNumber` before they
are created (the storefront reference), customers by number or email; reads are pure.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from crossdock.connectors.actions.pool import PooledClient, RateBudget
from crossdock.connectors.actions.spec import ActionInput, ActionOutput, ConnectorAction
from crossdock.connectors.builtin import BusinessCentralConfig, BusinessCentralSecrets
from crossdock.connectors.businesscentral.client import BusinessCentralClient, odata_string
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.engine.actions import ActionContext

SYSTEM = "businesscentral"


def build_client(config: Any, secrets: Any, *, acquire: Any, budget: RateBudget) -> BusinessCentralClient:
    assert isinstance(config, BusinessCentralConfig) and isinstance(secrets, BusinessCentralSecrets)
    return BusinessCentralClient(
        config.base_url,
        config.tenant,
        config.environment,
        config.company_id,
        secrets.client_id,
        secrets.client_secret,
        token_url=config.token_url,
        acquire=acquire,
    )


def _bc(conn: PooledClient) -> BusinessCentralClient:
    assert isinstance(conn.client, BusinessCentralClient)
    return conn.client


# -- find_items -------------------------------------------------------------------------------------
class FindItemsIn(ActionInput):
    skus: list[str] = Field(min_length=1, max_length=500, description="Item numbers (SKUs) to look up.")
    require_all: bool = Field(True, description="Fail with sku_not_found when any number is unknown.")


class ItemOut(BaseModel):
    id: str
    number: str
    display_name: str
    unit_price: float
    inventory: float
    blocked: bool
    type: str


class FindItemsOut(ActionOutput):
    items: dict[str, ItemOut]
    missing: list[str]


async def find_items(ctx: ActionContext, conn: PooledClient, data: FindItemsIn) -> FindItemsOut:
    found = await _bc(conn).get_items_by_number(data.skus)
    missing = sorted(set(data.skus) - set(found))
    if missing and data.require_all:
        raise ConnectorError(
            f"Business Central has no item numbered {', '.join(missing)}; map the SKU or create the item, then replay.",
            kind=FailureKind.DATA,
            category=FailureCategory.SKU_NOT_FOUND,
            system=SYSTEM,
            vendor_code="item_not_found",
            details={"missing": missing},
        )
    items = {
        number: ItemOut(
            id=str(item.get("id")),
            number=number,
            display_name=str(item.get("displayName") or ""),
            unit_price=float(item.get("unitPrice") or 0),
            inventory=float(item.get("inventory") or 0),
            blocked=bool(item.get("blocked")),
            type=str(item.get("type") or ""),
        )
        for number, item in found.items()
    }
    return FindItemsOut(items=items, missing=missing)


# -- upsert_customer --------------------------------------------------------------------------------
class CustomerIn(ActionInput):
    number: str | None = Field(None, max_length=20, description="Customer number; looked up first when given.")
    email: str | None = Field(None, max_length=80, description="Looked up when no number is given.")
    display_name: str = Field(min_length=1, max_length=100)
    phone_number: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    postal_code: str | None = None
    currency_code: str | None = None

    @model_validator(mode="after")
    def _key(self) -> CustomerIn:
        if not self.number and not self.email:
            raise ValueError("give a customer number or an email to find the customer by")
        return self


class CustomerOut(ActionOutput):
    id: str
    number: str
    created: bool
    updated: bool


_CUSTOMER_FIELDS = {
    "display_name": "displayName", "email": "email", "phone_number": "phoneNumber",
    "address_line1": "addressLine1", "address_line2": "addressLine2", "city": "city", "state": "state",
    "country": "country", "postal_code": "postalCode", "currency_code": "currencyCode",
}  # fmt: skip


async def upsert_customer(ctx: ActionContext, conn: PooledClient, data: CustomerIn) -> CustomerOut:
    bc = _bc(conn)
    wanted = {bc_name: getattr(data, name) for name, bc_name in _CUSTOMER_FIELDS.items()}
    wanted = {k: v for k, v in wanted.items() if v is not None}
    where = f"number eq {odata_string(data.number)}" if data.number else f"email eq {odata_string(data.email or '')}"
    existing = await bc.find_one("customers", where)
    if existing is None:
        try:
            made = await bc.create("customers", {**wanted, **({"number": data.number} if data.number else {})})
            return CustomerOut(id=str(made["id"]), number=str(made["number"]), created=True, updated=False)
        except ConnectorError as exc:  # created concurrently by another run: use theirs
            if exc.category is not FailureCategory.DUPLICATE:
                raise
            existing = await bc.find_one("customers", where)
            if existing is None:
                raise
    changes = {k: v for k, v in wanted.items() if existing.get(k) != v}
    if changes:
        existing = await bc.update("customers", str(existing["id"]), changes)
    return CustomerOut(id=str(existing["id"]), number=str(existing["number"]), created=False, updated=bool(changes))


# -- sales documents --------------------------------------------------------------------------------
class DocumentLine(BaseModel):
    item_number: str = Field(min_length=1, max_length=20, description="Item number (SKU) → lineObjectNumber.")
    quantity: float = Field(gt=0)
    unit_price: float | None = Field(None, ge=0, description="Default: the item's unit price.")
    discount_amount: float | None = Field(None, ge=0)
    description: str | None = Field(None, max_length=100)

    def to_bc(self) -> dict[str, Any]:
        line: dict[str, Any] = {"lineType": "Item", "lineObjectNumber": self.item_number, "quantity": self.quantity}
        for name, bc_name in (("unit_price", "unitPrice"), ("discount_amount", "discountAmount")):
            if getattr(self, name) is not None:
                line[bc_name] = getattr(self, name)
        if self.description:
            line["description"] = self.description
        return line


class ShipTo(BaseModel):
    name: str | None = Field(None, max_length=100)
    contact: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    post_code: str | None = None

    def to_bc(self) -> dict[str, Any]:
        names = {
            "name": "shipToName", "contact": "shipToContact", "address_line1": "shipToAddressLine1",
            "address_line2": "shipToAddressLine2", "city": "shipToCity", "state": "shipToState",
            "country": "shipToCountry", "post_code": "shipToPostCode",
        }  # fmt: skip
        return {bc: getattr(self, py) for py, bc in names.items() if getattr(self, py) is not None}


class SalesDocumentIn(ActionInput):
    external_document_number: str = Field(
        min_length=1, max_length=35, description="Storefront reference (e.g. the Shopify order name): the upsert key."
    )
    customer_number: str = Field(min_length=1, max_length=20)
    currency_code: str | None = None
    prices_include_tax: bool | None = None
    email: str | None = Field(None, max_length=80)
    phone_number: str | None = None
    ship_to: ShipTo | None = None
    lines: list[DocumentLine] = Field(min_length=1, max_length=1000)

    def head(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "externalDocumentNumber": self.external_document_number,
            "customerNumber": self.customer_number,
        }
        for name, bc_name in (
            ("currency_code", "currencyCode"), ("prices_include_tax", "pricesIncludeTax"),
            ("email", "email"), ("phone_number", "phoneNumber"),
        ):  # fmt: skip
            if getattr(self, name) is not None:
                body[bc_name] = getattr(self, name)
        if self.ship_to is not None:
            body.update(self.ship_to.to_bc())
        return body


class SalesOrderIn(SalesDocumentIn):
    order_date: date | None = None


class CreditMemoIn(SalesDocumentIn):
    invoice_id: str | None = Field(None, description="The posted invoice being credited.")
    post: bool = Field(False, description="Post the credit memo after creating it.")


class SalesDocumentOut(ActionOutput):
    id: str
    number: str
    external_document_number: str
    status: str
    total_amount_including_tax: float
    created: bool


def _document_out(doc: dict[str, Any], created: bool) -> SalesDocumentOut:
    return SalesDocumentOut(
        id=str(doc["id"]),
        number=str(doc.get("number")),
        external_document_number=str(doc.get("externalDocumentNumber")),
        status=str(doc.get("status")),
        total_amount_including_tax=float(doc.get("totalAmountIncludingTax") or 0),
        created=created,
    )


async def upsert_sales_order(ctx: ActionContext, conn: PooledClient, data: SalesOrderIn) -> SalesDocumentOut:
    body = {**data.head(), "salesOrderLines": [line.to_bc() for line in data.lines]}
    if data.order_date is not None:
        body["orderDate"] = data.order_date.isoformat()
    result = await _bc(conn).upsert_sales_order(body)
    return _document_out(result.order, result.created)


async def create_credit_memo(ctx: ActionContext, conn: PooledClient, data: CreditMemoIn) -> SalesDocumentOut:
    bc = _bc(conn)
    where = f"externalDocumentNumber eq {odata_string(data.external_document_number)}"
    memo = await bc.find_one("salesCreditMemos", where)
    created = memo is None
    if memo is None:
        body = {**data.head(), "salesCreditMemoLines": [line.to_bc() for line in data.lines]}
        if data.invoice_id:
            body["invoiceId"] = data.invoice_id
        memo = await bc.create_credit_memo(body)
    if data.post and memo.get("status") == "Draft":
        await bc.post_credit_memo(str(memo["id"]))
        memo = await bc.get("salesCreditMemos", str(memo["id"]))
    return _document_out(memo, created)


# -- shipments --------------------------------------------------------------------------------------
class ShipmentsIn(ActionInput):
    by: Literal["externalDocumentNumber", "orderNumber"] = "externalDocumentNumber"
    value: str = Field(min_length=1, max_length=35, description="The storefront reference or the BC order number.")


class ShipmentsOut(ActionOutput):
    shipments: list[dict[str, Any]]


async def get_shipments(ctx: ActionContext, conn: PooledClient, data: ShipmentsIn) -> ShipmentsOut:
    rows = await _bc(conn).list_all(
        "salesShipments", filter=f"{data.by} eq {odata_string(data.value)}", expand="salesShipmentLines"
    )
    return ShipmentsOut(shipments=rows)


ACTIONS = [
    ConnectorAction(
        "businesscentral.find_items", SYSTEM, FindItemsIn, FindItemsOut, find_items, "pure read",
        "Look items up by number (SKU validation, prices, inventory).", effect=False,
    ),
    ConnectorAction(
        "businesscentral.upsert_customer", SYSTEM, CustomerIn, CustomerOut, upsert_customer,
        "customer number, else email", "Create the customer or update the given fields.",
    ),
    ConnectorAction(
        "businesscentral.upsert_sales_order", SYSTEM, SalesOrderIn, SalesDocumentOut, upsert_sales_order,
        "externalDocumentNumber", "Create a sales order unless one with the same externalDocumentNumber exists.",
    ),
    ConnectorAction(
        "businesscentral.create_credit_memo", SYSTEM, CreditMemoIn, SalesDocumentOut, create_credit_memo,
        "externalDocumentNumber", "Create (and optionally post) a sales credit memo.",
    ),
    ConnectorAction(
        "businesscentral.get_shipments", SYSTEM, ShipmentsIn, ShipmentsOut, get_shipments, "pure read",
        "Posted sales shipments of an order, with lines.", effect=False,
    ),
]  # fmt: skip
