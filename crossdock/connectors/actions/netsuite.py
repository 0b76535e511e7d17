"""NetSuite engine actions: item lookup (SuiteQL), customer and sales order upserts by external id,
closing (cancelling) sales orders, transactions of a period, shipments (item fulfillments), credit
memos, return authorizations and transforms.

Idempotency: customers and sales orders are `PUT .../eid:{external_id}` upserts. Credit memos and
return authorizations carry an external id (given, or derived from the step's idempotency key),
are looked up by it first, and are created with `X-NetSuite-Idempotency-Key` = ctx.idempotency_key
so a retried POST resolves to the record the first attempt made. Transforms send the same header.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, model_validator

from crossdock.connectors.actions.pool import PooledClient, RateBudget
from crossdock.connectors.actions.spec import ActionInput, ActionOutput, ConnectorAction, digest
from crossdock.connectors.builtin import NetSuiteConfig, NetSuiteSecrets
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.netsuite.client import NetSuiteClient, sql_string
from crossdock.engine.actions import ActionContext

SYSTEM = "netsuite"
SUITEQL_CHUNK = 100


def build_client(config: Any, secrets: Any, *, acquire: Any, budget: RateBudget) -> NetSuiteClient:
    assert isinstance(config, NetSuiteConfig) and isinstance(secrets, NetSuiteSecrets)
    return NetSuiteClient(
        config.base_url,
        config.account_id,
        secrets.consumer_key,
        secrets.consumer_secret,
        secrets.token_id,
        secrets.token_secret,
        acquire=acquire,
    )


def _ns(conn: PooledClient) -> NetSuiteClient:
    assert isinstance(conn.client, NetSuiteClient)
    return conn.client


class Ref(BaseModel):
    """A record reference: an internal id or an external id (exactly one)."""

    id: str | None = None
    external_id: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Ref:
        if (self.id is None) == (self.external_id is None):
            raise ValueError("give exactly one of `id` or `external_id`")
        return self

    def to_ns(self) -> dict[str, str]:
        return {"id": self.id} if self.id is not None else {"externalId": str(self.external_id)}


class Line(BaseModel):
    item: Ref
    quantity: float = Field(gt=0)
    rate: float | None = Field(
        None, description="Default: the item's base price. Negative only on discount items (an order discount)."
    )
    description: str | None = None

    def to_ns(self) -> dict[str, Any]:
        line: dict[str, Any] = {"item": self.item.to_ns(), "quantity": self.quantity}
        if self.rate is not None:
            line["rate"] = self.rate
        if self.description:
            line["description"] = self.description
        return line


class TransactionIn(ActionInput):
    customer: Ref
    lines: list[Line] = Field(min_length=1, max_length=1000)
    memo: str | None = None
    other_ref_num: str | None = Field(None, description="The storefront reference (PO/Check number field).")
    tran_date: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    fields: dict[str, Any] = Field(default_factory=dict, description="Extra body fields (e.g. custbody_*).")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self.fields,
            "entity": self.customer.to_ns(),
            "item": {"items": [line.to_ns() for line in self.lines]},
        }
        for name, ns_name in (("memo", "memo"), ("other_ref_num", "otherRefNum"), ("tran_date", "tranDate")):
            if getattr(self, name) is not None:
                body[ns_name] = getattr(self, name)
        return body


class RecordOut(ActionOutput):
    id: str
    external_id: str | None = None
    tran_id: str | None = None
    total: float | None = None
    created: bool | None = None


# -- find_items -------------------------------------------------------------------------------------
class FindItemsIn(ActionInput):
    skus: list[str] = Field(min_length=1, max_length=1000)
    match: str = Field("itemid", pattern=r"^(itemid|externalid)$", description="Column the SKU is matched on.")
    require_all: bool = Field(True, description="Fail with sku_not_found when any SKU is unknown or inactive.")


class NsItemLocation(BaseModel):
    available: float = Field(description="quantityAvailable at the location (on hand less committed).")
    on_hand: float = Field(description="quantityOnHand at the location.")


class NsItem(BaseModel):
    id: str
    number: str = Field(description="The SKU as matched (`itemid` or `externalid`, per `match`).")
    itemid: str | None
    externalid: str | None
    displayname: str | None
    baseprice: float | None
    inactive: bool
    inventory: float = Field(0.0, description="quantityAvailable summed over the item's locations.")
    locations: dict[str, NsItemLocation] = Field(
        default_factory=dict, description="Location internal id → quantities (SuiteQL inventoryItemLocations)."
    )


class FindItemsOut(ActionOutput):
    items: dict[str, NsItem]
    missing: list[str]


async def find_items(ctx: ActionContext, conn: PooledClient, data: FindItemsIn) -> FindItemsOut:
    ns = _ns(conn)
    wanted = sorted(set(data.skus))
    items: dict[str, NsItem] = {}
    for start in range(0, len(wanted), SUITEQL_CHUNK):
        chunk = wanted[start : start + SUITEQL_CHUNK]
        values = ", ".join(sql_string(s) for s in chunk)
        query = (
            "SELECT id, itemid, externalid, displayname, baseprice, isinactive FROM item "  # noqa: S608 - quoted
            f"WHERE {data.match} IN ({values})"
        )
        async for row in ns.suiteql(query):
            key = str(row.get(data.match))
            price = row.get("baseprice")
            items[key] = NsItem(
                id=str(row["id"]),
                number=key,
                itemid=row.get("itemid"),
                externalid=row.get("externalid"),
                displayname=row.get("displayname"),
                baseprice=float(price) if price not in (None, "") else None,
                inactive=row.get("isinactive") == "T",
            )
    missing = [s for s in wanted if s not in items or items[s].inactive]
    if missing and data.require_all:
        raise ConnectorError(
            f"NetSuite has no active item {', '.join(missing)}; map the SKU or create the item, then replay.",
            kind=FailureKind.DATA,
            category=FailureCategory.SKU_NOT_FOUND,
            system=SYSTEM,
            vendor_code="item_not_found",
            details={"missing": missing},
        )
    await _item_quantities(ns, items)
    return FindItemsOut(items=items, missing=missing)


def _qty(value: Any) -> float:
    return float(value) if value not in (None, "") else 0.0  # SuiteQL leaves zero quantities empty


async def _item_quantities(ns: NetSuiteClient, items: dict[str, NsItem]) -> None:
    """Per-location quantities of the found items (SuiteQL `inventoryItemLocations`); `inventory` is their sum."""
    by_id = {item.id: item for item in items.values()}
    ids = sorted(by_id)
    for start in range(0, len(ids), SUITEQL_CHUNK):
        values = ", ".join(sql_string(i) for i in ids[start : start + SUITEQL_CHUNK])
        query = (
            "SELECT item, location, quantityavailable, quantityonhand FROM inventoryitemlocations "  # noqa: S608 - quoted
            f"WHERE item IN ({values})"
        )
        async for row in ns.suiteql(query):
            item = by_id.get(str(row.get("item")))
            if item is None or row.get("location") in (None, ""):
                continue
            available = _qty(row.get("quantityavailable"))
            item.locations[str(row["location"])] = NsItemLocation(
                available=available, on_hand=_qty(row.get("quantityonhand"))
            )
            item.inventory += available


# -- upserts by external id -------------------------------------------------------------------------
class CustomerIn(ActionInput):
    external_id: str = Field(min_length=1, max_length=255, description="The upsert key (e.g. shopify-customer-123).")
    company_name: str | None = None
    email: str | None = None
    phone: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict, description="Extra body fields (e.g. custentity_*).")


class CustomerOut(ActionOutput):
    id: str
    external_id: str
    credit_limit: float | None = Field(None, description="None: no limit set.")
    balance: float = 0.0


async def upsert_customer(ctx: ActionContext, conn: PooledClient, data: CustomerIn) -> CustomerOut:
    ns = _ns(conn)
    body = {**data.fields, **data.model_dump(include={"company_name", "email", "phone"}, exclude_none=True)}
    body = {{"company_name": "companyName"}.get(k, k): v for k, v in body.items()}
    ident = await ns.upsert("customer", data.external_id, body)
    record = await ns.get("customer", ident)  # the credit limit and balance the credit check needs
    return CustomerOut(
        id=ident, external_id=data.external_id, credit_limit=_float(record.get("creditLimit")),
        balance=_float(record.get("balance")) or 0.0,
    )  # fmt: skip


class SalesOrderIn(TransactionIn):
    external_id: str = Field(min_length=1, max_length=255, description="The upsert key (e.g. shopify-order-123).")


async def upsert_sales_order(ctx: ActionContext, conn: PooledClient, data: SalesOrderIn) -> RecordOut:
    ns = _ns(conn)
    ident = await ns.upsert("salesOrder", data.external_id, data.body())
    record = await ns.get("salesOrder", ident)
    return RecordOut(
        id=ident, external_id=data.external_id, tran_id=record.get("tranId"), total=_float(record.get("total"))
    )


# -- closing (cancellation) ---------------------------------------------------------------------------
class SalesOrderRefIn(ActionInput):
    external_id: str = Field(min_length=1, max_length=255, description="The sales order's external id.")
    memo: str | None = Field(None, max_length=999, description="Replaces the order memo (e.g. the cancel reason).")


class CloseOut(ActionOutput):
    id: str
    external_id: str
    tran_id: str | None
    status: str | None
    closed: bool


_SHIPPED = {"Pending Billing", "Billed", "Partially Fulfilled", "Pending Billing/Partially Fulfilled"}


async def close_sales_order(ctx: ActionContext, conn: PooledClient, data: SalesOrderRefIn) -> CloseOut:
    """Cancel a sales order the way REST allows: close every line (`isClosed`), so the order is Closed."""
    ns = _ns(conn)
    order = await ns.get_by_external_id("salesOrder", data.external_id, expand_sub_resources=True)
    if order is None:
        raise ConnectorError(
            f"NetSuite has no sales order with external id {data.external_id}; was it ever imported?",
            kind=FailureKind.DATA, category=FailureCategory.NOT_FOUND, system=SYSTEM, vendor_code="order_not_found",
        )  # fmt: skip
    status = (order.get("status") or {}).get("id") if isinstance(order.get("status"), dict) else order.get("status")
    if status in _SHIPPED:
        raise ConnectorError(
            f"NetSuite sales order {order.get('tranId')} is {status}: it has shipped and cannot be closed. "
            "Arrange a return instead.",
            kind=FailureKind.DATA, category=FailureCategory.FULFILLMENT_STATE, system=SYSTEM,
            vendor_code="already_fulfilled",
        )  # fmt: skip
    lines = ((order.get("item") or {}).get("items")) or []
    closed = status == "Closed"
    if not closed:
        changes: dict[str, Any] = {
            "item": {"items": [{**_line_ref(line), "isClosed": True} for line in lines]},
        }
        if data.memo is not None:
            changes["memo"] = data.memo
        await ns.update("salesOrder", str(order["id"]), changes)
        order = await ns.get("salesOrder", str(order["id"]))
    new_status = order.get("status")
    return CloseOut(
        id=str(order["id"]), external_id=data.external_id, tran_id=order.get("tranId"),
        status=new_status.get("id") if isinstance(new_status, dict) else new_status, closed=not closed,
    )  # fmt: skip


def _line_ref(line: dict[str, Any]) -> dict[str, Any]:
    item = line.get("item") or {}
    out: dict[str, Any] = {"item": {"id": str(item.get("id"))}, "quantity": line.get("quantity")}
    if line.get("rate") is not None:
        out["rate"] = line["rate"]
    return out


# -- transactions of a period (payout reconciliation) ------------------------------------------------
class TransactionsIn(ActionInput):
    since_days: int = Field(7, ge=0, le=366, description="Transactions dated today or up to N days before.")


class LedgerDocument(BaseModel):
    type: str
    record_type: str
    id: str
    tran_id: str | None
    external_id: str | None
    date: str
    total: float


class TransactionsOut(ActionOutput):
    documents: list[LedgerDocument]


_LEDGER_TYPES = {"SalesOrd": ("order", "salesOrder"), "CustCred": ("refund", "creditMemo")}


async def list_transactions(ctx: ActionContext, conn: PooledClient, data: TransactionsIn) -> TransactionsOut:
    """Sales orders (not closed) and credit memos dated since N days ago, by SuiteQL."""
    since = (datetime.now(UTC).date() - timedelta(days=data.since_days)).strftime("%Y-%m-%d")
    query = (
        "SELECT id, tranid, externalid, type, trandate, status, foreigntotal FROM transaction "  # noqa: S608 - no input
        f"WHERE type IN ('SalesOrd', 'CustCred') AND trandate >= {sql_string(since)}"
    )
    documents = []
    async for row in _ns(conn).suiteql(query):
        if row.get("type") == "SalesOrd" and row.get("status") == "Closed":
            continue
        kind, record_type = _LEDGER_TYPES[str(row.get("type"))]
        documents.append(
            LedgerDocument(
                type=kind, record_type=record_type, id=str(row["id"]), tran_id=row.get("tranid"),
                external_id=row.get("externalid"), date=str(row.get("trandate"))[:10],
                total=_float(row.get("foreigntotal")) or 0.0,
            )
        )  # fmt: skip
    return TransactionsOut(documents=documents)


# -- shipments (item fulfillments) ------------------------------------------------------------------
# What is and is not verified: the REST record shape read here (`createdFrom`, the `item` sublist with
# `item`/`quantity`, the generic `package` sublist with `packageTrackingNumber`, `shipMethod` as a
# reference whose `refName` names the ship item, `shipStatus`) follows NetSuite's REST API browser
# for itemFulfillment and is what the simulator serves; it has not been run against a live account.
# Not read: the carrier-specific sublists (`packageUps`, `packageFedEx`, `packageUsps`, whose
# tracking fields are named per carrier) — accounts shipping through integrated UPS/FedEx labels
# keep their tracking numbers there, and such fulfillments show no tracking number here.
class ShipmentsIn(ActionInput):
    since_days: int = Field(1, ge=0, le=366, description="Fulfillments dated today or up to N days before.")


class ShipmentLine(BaseModel):
    item: str | None = Field(description="The item's name (refName), else its internal id.")
    quantity: float


class NsShipment(BaseModel):
    id: str
    tran_id: str | None
    date: str | None
    sales_order_id: str | None
    order_id: str | None = Field(description="The created-from sales order's externalId (the Shopify order id).")
    tracking_number: str | None = Field(description="The first package's tracking number.")
    tracking_numbers: list[str]
    carrier: str | None = Field(description="`shipMethod` (the ship item's name), else None.")
    lines: list[ShipmentLine]


class ShipmentsOut(ActionOutput):
    shipments: list[NsShipment]


_NOT_SHIPPED = {"A", "B", "Picked", "Packed"}  # shipStatus A = Picked, B = Packed, C = Shipped


async def get_shipments(ctx: ActionContext, conn: PooledClient, data: ShipmentsIn) -> ShipmentsOut:
    """Item fulfillments dated since N days ago (SuiteQL), each read with its sublists and its sales order."""
    ns = _ns(conn)
    since = (datetime.now(UTC).date() - timedelta(days=data.since_days)).strftime("%Y-%m-%d")
    query = (
        "SELECT id FROM transaction "  # noqa: S608 - no input
        f"WHERE type = 'ItemShip' AND trandate >= {sql_string(since)} ORDER BY id"
    )
    ids = [str(row["id"]) async for row in ns.suiteql(query)]
    order_ids: dict[str, str | None] = {}
    shipments = []
    for ident in ids:
        record = await ns.get("itemFulfillment", ident, expand_sub_resources=True)
        if _ref_id(record.get("shipStatus")) in _NOT_SHIPPED:
            continue  # picked or packed, not shipped yet
        source = _ref_id(record.get("createdFrom"))
        if source is not None and source not in order_ids:
            order_ids[source] = (await ns.get("salesOrder", source)).get("externalId")
        packages = ((record.get("package") or {}).get("items")) or []
        tracking = [str(p["packageTrackingNumber"]) for p in packages if p.get("packageTrackingNumber")]
        ship_method = record.get("shipMethod")
        carrier = ship_method.get("refName") if isinstance(ship_method, dict) else ship_method
        lines = [
            ShipmentLine(
                item=(line.get("item") or {}).get("refName") or (line.get("item") or {}).get("id"),
                quantity=_float(line.get("quantity")) or 0.0,
            )
            for line in ((record.get("item") or {}).get("items")) or []
        ]
        shipments.append(
            NsShipment(
                id=str(record["id"]), tran_id=record.get("tranId"), date=record.get("tranDate"),
                sales_order_id=source, order_id=order_ids.get(source) if source else None,
                tracking_number=tracking[0] if tracking else None, tracking_numbers=tracking,
                carrier=str(carrier) if carrier else None, lines=lines,
            )
        )  # fmt: skip
    return ShipmentsOut(shipments=shipments)


def _ref_id(value: Any) -> str | None:
    """The id of a reference (`{"id", "refName"}`) or a plain value."""
    if isinstance(value, dict):
        value = value.get("id")
    return None if value in (None, "") else str(value)


# -- created records (credit memo, RMA) ----------------------------------------------------------------
class CreatedTransactionIn(TransactionIn):
    external_id: str | None = Field(
        None, max_length=255, description="Idempotency key across runs (e.g. shopify-refund-9); default: derived."
    )


async def _create_once(
    ctx: ActionContext, conn: PooledClient, record_type: str, data: CreatedTransactionIn
) -> RecordOut:
    ns = _ns(conn)
    external = data.external_id or f"crossdock-{digest(ctx.idempotency_key)}"
    existing = await ns.get_by_external_id(record_type, external)
    created = existing is None
    if existing is None:
        ident = await ns.create(
            record_type, {**data.body(), "externalId": external}, idempotency_key=ctx.idempotency_key
        )
        existing = await ns.get(record_type, ident)
    return RecordOut(
        id=str(existing["id"]), external_id=external, tran_id=existing.get("tranId"),
        total=_float(existing.get("total")), created=created,
    )  # fmt: skip


async def create_credit_memo(ctx: ActionContext, conn: PooledClient, data: CreatedTransactionIn) -> RecordOut:
    return await _create_once(ctx, conn, "creditMemo", data)


async def create_return_authorization(ctx: ActionContext, conn: PooledClient, data: CreatedTransactionIn) -> RecordOut:
    return await _create_once(ctx, conn, "returnAuthorization", data)


# -- transform ---------------------------------------------------------------------------------------
class TransformIn(ActionInput):
    source_type: str = Field(pattern=r"^[a-zA-Z]+$", examples=["salesOrder"])
    source_id: str = Field(min_length=1, description="Internal id, or `eid:{external id}`.")
    target_type: str = Field(pattern=r"^[a-zA-Z]+$", examples=["itemFulfillment"])
    body: dict[str, Any] = Field(default_factory=dict)


class TransformOut(ActionOutput):
    id: str
    source_type: str
    source_id: str
    target_type: str


async def transform(ctx: ActionContext, conn: PooledClient, data: TransformIn) -> TransformOut:
    ident = await _ns(conn).transform(
        data.source_type, data.source_id, data.target_type, data.body, idempotency_key=ctx.idempotency_key
    )
    return TransformOut(id=ident, source_type=data.source_type, source_id=data.source_id, target_type=data.target_type)


def _float(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


ACTIONS = [
    ConnectorAction(
        "netsuite.find_items", SYSTEM, FindItemsIn, FindItemsOut, find_items, "pure read",
        "Look items up by SKU with SuiteQL (validation, base prices).", effect=False,
    ),
    ConnectorAction(
        "netsuite.upsert_customer", SYSTEM, CustomerIn, CustomerOut, upsert_customer,
        "external id (`PUT customer/eid:{external_id}`)", "Create or update a customer by external id.",
    ),
    ConnectorAction(
        "netsuite.upsert_sales_order", SYSTEM, SalesOrderIn, RecordOut, upsert_sales_order,
        "external id (`PUT salesOrder/eid:{external_id}`)", "Create or update a sales order by external id.",
    ),
    ConnectorAction(
        "netsuite.close_sales_order", SYSTEM, SalesOrderRefIn, CloseOut, close_sales_order,
        "external id; an order already Closed is returned unchanged",
        "Cancel a sales order by closing its lines (fulfillment_state once shipped, not_found if never imported).",
    ),
    ConnectorAction(
        "netsuite.list_transactions", SYSTEM, TransactionsIn, TransactionsOut, list_transactions, "pure read",
        "Sales orders and credit memos of the last N days (payout reconciliation).", effect=False,
    ),
    ConnectorAction(
        "netsuite.get_shipments", SYSTEM, ShipmentsIn, ShipmentsOut, get_shipments, "pure read",
        "Item fulfillments of the last N days with their sales order's external id, lines and package "
        "tracking numbers.", effect=False,
    ),
    ConnectorAction(
        "netsuite.create_credit_memo", SYSTEM, CreatedTransactionIn, RecordOut, create_credit_memo,
        "external id (looked up first) + X-NetSuite-Idempotency-Key = the step's idempotency key",
        "Create a credit memo.",
    ),
    ConnectorAction(
        "netsuite.create_return_authorization", SYSTEM, CreatedTransactionIn, RecordOut,
        create_return_authorization,
        "external id (looked up first) + X-NetSuite-Idempotency-Key = the step's idempotency key",
        "Create a return authorization (RMA).",
    ),
    ConnectorAction(
        "netsuite.transform", SYSTEM, TransformIn, TransformOut, transform,
        "X-NetSuite-Idempotency-Key = the step's idempotency key (a replay resolves the record made)",
        "Transform a record (e.g. salesOrder → itemFulfillment or invoice).",
    ),
]  # fmt: skip
