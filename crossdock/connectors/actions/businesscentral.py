"""Business Central engine actions: item lookup (SKU validation, prices), customer and sales order upserts,
order edits and cancellations, credit memos, shipments and the documents of a period.

Idempotency: sales orders and credit memos are looked up by `externalDocumentNumber` before they
are created (the storefront reference), customers by number or email; reads are pure.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
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
    credit_limit: float = Field(0.0, description="0 means no limit, as in Business Central.")
    balance_due: float = 0.0


def _customer_out(row: dict[str, Any], *, created: bool, updated: bool) -> CustomerOut:
    return CustomerOut(
        id=str(row["id"]), number=str(row["number"]), created=created, updated=updated,
        credit_limit=float(row.get("creditLimit") or 0), balance_due=float(row.get("balanceDue") or 0),
    )  # fmt: skip


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
            if data.number:  # BC refuses a second customer with the same number
                return _customer_out(made, created=True, updated=False)
            # Nothing stops two racing runs from both creating the customer by email: the lowest
            # number wins and the loser deletes its copy (as for sales orders).
            twins = await bc.list_all("customers", filter=where)
            winner = min(twins or [made], key=lambda c: (len(str(c.get("number"))), str(c.get("number"))))
            if str(winner["id"]) == str(made["id"]):
                return _customer_out(made, created=True, updated=False)
            await bc.delete("customers", str(made["id"]))
            return _customer_out(winner, created=False, updated=False)
        except ConnectorError as exc:  # created concurrently by another run: use theirs
            if exc.category is not FailureCategory.DUPLICATE:
                raise
            existing = await bc.find_one("customers", where)
            if existing is None:
                raise
    changes = {k: v for k, v in wanted.items() if existing.get(k) != v}
    if changes:
        existing = await bc.update("customers", str(existing["id"]), changes)
    return _customer_out(existing, created=False, updated=bool(changes))


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
    bc = _bc(conn)
    result = await bc.upsert_sales_order(body)
    if not result.created:
        return _document_out(result.order, False)
    # BC has no unique key on externalDocumentNumber: two runs racing on one order (a redelivery while
    # the first run is in flight) can both create. Look again; the lowest number wins, the loser deletes
    # its own copy, so every racer ends with the same single order.
    twins = await bc.list_all("salesOrders", filter=_by_external(data.external_document_number))
    if len(twins) > 1:
        winner = min(twins, key=lambda o: (len(str(o.get("number"))), str(o.get("number"))))
        if str(winner["id"]) != str(result.order["id"]):
            await bc.delete("salesOrders", str(result.order["id"]))
            return _document_out(winner, False)
    return _document_out(result.order, True)


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


# -- edits and cancellations -------------------------------------------------------------------------
class OrderRefIn(ActionInput):
    external_document_number: str = Field(min_length=1, max_length=35, description="The storefront reference.")


class CancelOut(ActionOutput):
    external_document_number: str
    number: str | None
    cancelled: bool


def _by_external(external: str) -> str:
    return f"externalDocumentNumber eq {odata_string(external)}"


async def _shipped(bc: BusinessCentralClient, external: str) -> ConnectorError | None:
    """A fulfillment_state error when the order already has a posted shipment, else None."""
    shipment = await bc.find_one("salesShipments", _by_external(external))
    if shipment is None:
        return None
    return ConnectorError(
        f"Business Central order {external} has already shipped (shipment {shipment.get('number')}); "
        "it can no longer be changed or cancelled. Arrange a return instead.",
        kind=FailureKind.DATA, category=FailureCategory.FULFILLMENT_STATE, system=SYSTEM, vendor_code="already_shipped",
    )  # fmt: skip


def _never_imported(external: str) -> ConnectorError:
    return ConnectorError(
        f"Business Central has no sales order with externalDocumentNumber {external}; was it ever imported?",
        kind=FailureKind.DATA, category=FailureCategory.NOT_FOUND, system=SYSTEM, vendor_code="order_not_found",
    )  # fmt: skip


async def cancel_sales_order(ctx: ActionContext, conn: PooledClient, data: OrderRefIn) -> CancelOut:
    """API v2.0 has no cancel action: an open sales order is cancelled by deleting it."""
    bc = _bc(conn)
    order = await bc.find_one("salesOrders", _by_external(data.external_document_number))
    if order is None:
        shipped = await _shipped(bc, data.external_document_number)
        if shipped is not None:
            raise shipped
        raise _never_imported(data.external_document_number)
    await bc.delete("salesOrders", str(order["id"]), etag=order.get("@odata.etag"))
    return CancelOut(external_document_number=data.external_document_number, number=order.get("number"), cancelled=True)


class SalesOrderEditIn(SalesOrderIn):
    customer_number: str | None = Field(None, max_length=20, description="Ignored: an edit keeps the customer.")  # type: ignore[assignment]


async def update_sales_order(ctx: ActionContext, conn: PooledClient, data: SalesOrderEditIn) -> SalesDocumentOut:
    """Re-send an edited order: head fields patched, lines replaced when they differ."""
    bc = _bc(conn)
    order = await bc.find_one("salesOrders", _by_external(data.external_document_number))
    if order is None:
        shipped = await _shipped(bc, data.external_document_number)
        raise shipped if shipped is not None else _never_imported(data.external_document_number)
    order_id = str(order["id"])
    head = {k: v for k, v in data.head().items() if k != "customerNumber" and order.get(k) != v}
    if data.order_date is not None and order.get("orderDate") != data.order_date.isoformat():
        head["orderDate"] = data.order_date.isoformat()
    if head:
        order = await bc.update("salesOrders", order_id, head)
    lines_set = f"salesOrders({order_id})/salesOrderLines"
    current = await bc.list_all(lines_set)
    wanted = [line.to_bc() for line in data.lines]
    if [_line_key(li) for li in current] != [_line_key(li) for li in wanted]:
        for line in current:
            await bc.delete(lines_set, str(line["id"]), etag=line.get("@odata.etag"))
        for line in wanted:
            await bc.create(lines_set, line)
    return _document_out(await bc.get("salesOrders", order_id), created=False)


def _line_key(line: dict[str, Any]) -> tuple[Any, ...]:
    return (
        line.get("lineObjectNumber"), float(line.get("quantity") or 0),
        None if "unitPrice" not in line else float(line["unitPrice"]), float(line.get("discountAmount") or 0),
    )  # fmt: skip


# -- shipments --------------------------------------------------------------------------------------
class ShipmentsIn(ActionInput):
    by: Literal["externalDocumentNumber", "orderNumber"] = "externalDocumentNumber"
    value: str | None = Field(
        None, min_length=1, max_length=35, description="The storefront reference or the BC order number."
    )
    since_days: int | None = Field(
        None, ge=0, le=366, description="Instead of `value`: shipments dated today or up to N days before."
    )

    @model_validator(mode="after")
    def _one(self) -> ShipmentsIn:
        if (self.value is None) == (self.since_days is None):
            raise ValueError("give exactly one of `value` or `since_days`")
        return self


class ShipmentsOut(ActionOutput):
    shipments: list[dict[str, Any]]


def _since(days: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=days)).isoformat()


async def get_shipments(ctx: ActionContext, conn: PooledClient, data: ShipmentsIn) -> ShipmentsOut:
    if data.value is not None:
        where = f"{data.by} eq {odata_string(data.value)}"
    else:
        where = f"shipmentDate ge {_since(data.since_days or 0)}"
    rows = await _bc(conn).list_all("salesShipments", filter=where, expand="salesShipmentLines")
    return ShipmentsOut(shipments=rows)


# -- documents (payout reconciliation) -----------------------------------------------------------------
class DocumentsIn(ActionInput):
    since_days: int = Field(7, ge=0, le=366, description="Documents dated today or up to N days before.")


class LedgerDocument(BaseModel):
    type: Literal["order", "refund"]
    entity: str
    number: str
    external_document_number: str
    date: str
    total: float


class DocumentsOut(ActionOutput):
    documents: list[LedgerDocument]


_DOCUMENT_SETS: tuple[tuple[str, str, Literal["order", "refund"]], ...] = (
    ("salesOrders", "orderDate", "order"),
    ("salesInvoices", "invoiceDate", "order"),
    ("salesCreditMemos", "creditMemoDate", "refund"),
)


async def list_documents(ctx: ActionContext, conn: PooledClient, data: DocumentsIn) -> DocumentsOut:
    """Open orders, invoices (an invoiced order is deleted from salesOrders) and credit memos since a date."""
    bc, since = _bc(conn), _since(data.since_days)
    documents: list[LedgerDocument] = []
    invoiced: set[str] = set()
    for entity, date_field, kind in _DOCUMENT_SETS:
        for row in await bc.list_all(entity, filter=f"{date_field} ge {since}"):
            if entity == "salesInvoices" and row.get("orderNumber") in invoiced:
                continue  # partially invoiced order still open: counted once, as the order
            if entity == "salesOrders":
                invoiced.add(str(row.get("number")))
            if entity == "salesCreditMemos" and row.get("status") in ("Draft", "Canceled"):
                continue
            documents.append(
                LedgerDocument(
                    type=kind, entity=entity, number=str(row.get("number")),
                    external_document_number=str(row.get("externalDocumentNumber") or ""),
                    date=str(row.get(date_field))[:10], total=float(row.get("totalAmountIncludingTax") or 0),
                )
            )  # fmt: skip
    return DocumentsOut(documents=documents)


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
        "businesscentral.update_sales_order", SYSTEM, SalesOrderEditIn, SalesDocumentOut, update_sales_order,
        "externalDocumentNumber; head fields patched and lines replaced only when they differ (a replay is a no-op)",
        "Re-send an edited sales order (not_found when it was never imported, fulfillment_state once shipped).",
    ),
    ConnectorAction(
        "businesscentral.cancel_sales_order", SYSTEM, OrderRefIn, CancelOut, cancel_sales_order,
        "externalDocumentNumber; the engine ledger guards a replay (the order is gone after the first call)",
        "Cancel an open sales order by deleting it (fulfillment_state once shipped, not_found if never imported).",
    ),
    ConnectorAction(
        "businesscentral.get_shipments", SYSTEM, ShipmentsIn, ShipmentsOut, get_shipments, "pure read",
        "Posted sales shipments of one order, or of the last N days, with lines.", effect=False,
    ),
    ConnectorAction(
        "businesscentral.list_documents", SYSTEM, DocumentsIn, DocumentsOut, list_documents, "pure read",
        "Orders, invoices and posted credit memos of the last N days (payout reconciliation).", effect=False,
    ),
]  # fmt: skip
