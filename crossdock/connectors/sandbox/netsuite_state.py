"""The NetSuite simulator's accounts, records and the business rules NetSuite applies on writes.

Records are stored per account as NetSuite returns them (`id` strings, references as
`{"id","refName"}`, sublists as `{"items": [...]}`). Rules: entity and item references must
resolve (`INVALID_KEY_OR_REF`), required values (`USER_ERROR`), credit holds when "enforce holds"
is on, transforms only while something is left to fulfil or bill, and unique external ids.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

TRANSACTIONS = {
    "salesOrder": ("SalesOrd", "SO"),
    "invoice": ("CustInvc", "INV"),
    "itemFulfillment": ("ItemShip", "IF"),
    "creditMemo": ("CustCred", "CM"),
    "returnAuthorization": ("RtnAuth", "RMA"),
    "cashSale": ("CashSale", "CS"),
}
RECORD_TYPES = frozenset({"customer", "inventoryItem", *TRANSACTIONS})
TRANSFORMS = {
    "salesOrder": {"itemFulfillment", "invoice", "returnAuthorization"},
    "invoice": {"creditMemo"},
    "cashSale": {"returnAuthorization"},
    "returnAuthorization": {"creditMemo"},
}
READ_ONLY = frozenset(
    {"id", "links", "balance", "total", "subtotal", "tranId", "status", "createdDate", "lastModifiedDate"}
)
CUSTOM_PREFIXES = ("custbody", "custentity", "custitem", "custcol", "custrecord")
KNOWN_FIELDS = {
    "customer": {"externalId", "entityId", "companyName", "email", "phone", "creditLimit", "creditHoldOverride"}
    | {"isInactive", "subsidiary", "currency", "defaultAddress", "comments"},
    "inventoryItem": {"externalId", "itemId", "displayName", "basePrice", "quantityAvailable", "isInactive"}
    | {"subsidiary", "upcCode", "description"},
    "transaction": {"externalId", "entity", "tranDate", "memo", "otherRefNum", "currency", "item", "subsidiary"}
    | {"shipAddress", "billAddress", "shipMethod", "createdFrom", "orderStatus", "location", "department"},
}
LINE_FIELDS = {"item", "quantity", "rate", "amount", "description", "line", "location", "price", "taxCode"}
LINE_FIELDS |= {"isClosed"}  # closing every line of a sales order closes (cancels) it
# Body fields only some transaction types have. An item fulfillment's `package` sublist (the
# generic one; NetSuite also has carrier-specific packageUps/packageFedEx/packageUsps sublists, not
# modelled) carries the tracking numbers.
RECORD_FIELDS: dict[str, frozenset[str]] = {"itemFulfillment": frozenset({"package"})}
PACKAGE_FIELDS = frozenset({"packageTrackingNumber", "packageWeight", "packageDescr"})


class NSSettings(BaseModel):
    """Knobs of the simulated NetSuite (changeable at runtime through `POST /_control/settings`)."""

    model_config = ConfigDict(extra="forbid")

    concurrency_limit: int = Field(5, ge=1, description="Default in-flight requests per account (shared tier).")
    enforce_holds: bool = Field(True, description="Block transactions that push a customer past its credit limit.")
    timestamp_skew_s: int = Field(300, ge=0, description="Accepted |oauth_timestamp - now|.")
    default_page_limit: int = Field(1000, ge=1, le=1000, description="Collection/SuiteQL page size by default.")
    max_request_bytes: int = Field(104_857_600, ge=1, description="Request bodies above this answer 413.")
    latency_ms: float = Field(0, ge=0, description="Processing time per request, spent holding a concurrency slot.")


class NSError(Exception):
    """A NetSuite REST error response (`o:errorDetails`)."""

    TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}
    TITLES |= {409: "Conflict", 413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error"}

    def __init__(self, status: int, code: str, detail: str, *, path: str | None = None, **extra: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.path, self.extra = status, code, detail, path, extra

    def body(self) -> dict[str, Any]:
        item: dict[str, Any] = {"detail": self.detail, "o:errorCode": self.code}
        if self.path is not None:
            item["o:errorPath"] = self.path
        item.update(self.extra)
        section = {400: "10.4.1", 401: "10.4.2", 403: "10.4.4", 404: "10.4.5", 405: "10.4.6", 409: "10.4.10"}
        anchor = section.get(self.status, "10.4.1" if self.status < 500 else "10.5.1")
        return {
            "type": f"https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec{anchor}",
            "title": self.TITLES.get(self.status, "Error"),
            "status": self.status,
            "o:errorDetails": [item],
        }


def user_error(detail: str, path: str | None = None) -> NSError:
    return NSError(400, "USER_ERROR", f"Error while accessing a resource. {detail}", path=path)


def nonexistent(record_type: str, ident: str) -> NSError:
    return NSError(
        404,
        "NONEXISTENT_ID",
        f"The record instance does not exist. Provide a valid record instance ID. ({record_type} {ident})",
    )


@dataclass
class Account:
    """One NetSuite account: TBA credentials, limits, replay protection and its records."""

    realm: str
    consumers: dict[str, str] = field(default_factory=dict)  # consumer key → secret
    tokens: dict[str, str] = field(default_factory=dict)  # token id → secret
    concurrency_limit: int | None = None
    in_flight: int = 0
    nonces: dict[tuple[str, str, str, str], float] = field(default_factory=dict)
    idempotency: dict[str, str] = field(default_factory=dict)  # key → "pending" | "done"
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    numbers: dict[str, int] = field(default_factory=dict)

    def table(self, record_type: str) -> dict[str, dict[str, Any]]:
        return self.records.setdefault(record_type, {})


def _check_packages(value: Any) -> None:
    """An item fulfillment's `package` sublist: `{"items": [{packageTrackingNumber, packageWeight, packageDescr}]}`."""
    lines = value.get("items") if isinstance(value, dict) else None
    if not isinstance(lines, list):
        raise user_error('Invalid sublist: package must be {"items": [...]}.', "package")
    for index, line in enumerate(lines):
        path = f"package.items[{index}]"
        if not isinstance(line, dict):
            raise user_error("Invalid sublist line.", path)
        unknown = set(line) - PACKAGE_FIELDS
        if unknown:
            raise NSError(400, "INVALID_CONTENT", f"Invalid field name: {sorted(unknown)[0]}.", path=path)


def _dec(value: Any, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise user_error(f"Invalid number {value!r}.", path)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise user_error(f"Invalid number {value!r}.", path) from None


class RecordStore:
    """Reads and writes records of one account, applying NetSuite's rules."""

    def __init__(self, settings: NSSettings, now: Callable[[], float]) -> None:
        self.settings = settings
        self.now = now

    def stamp(self) -> str:
        return datetime.fromtimestamp(self.now(), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    def find(self, account: Account, record_type: str, ident: str) -> dict[str, Any] | None:
        table = account.table(record_type)
        if ident.startswith("eid:"):
            external = ident[4:]
            return next((r for r in table.values() if r.get("externalId") == external), None)
        return table.get(ident)

    def get(self, account: Account, record_type: str, ident: str) -> dict[str, Any]:
        record = self.find(account, record_type, ident)
        if record is None:
            raise nonexistent(record_type, ident)
        return record

    def seed(self, account: Account, record_type: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert master data as-is (read-only values such as `balance` allowed)."""
        created = []
        for row in rows:
            record = {**copy.deepcopy(row), "id": str(row.get("id") or next(account.ids))}
            record.setdefault("createdDate", self.stamp())
            record["lastModifiedDate"] = self.stamp()
            if record_type == "customer":
                record.setdefault("balance", 0.0)
                record.setdefault("creditHoldOverride", "AUTO")
            account.table(record_type)[record["id"]] = record
            created.append(record)
        return created

    def create(self, account: Account, record_type: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check_fields(record_type, body)
        external = body.get("externalId")
        if external is not None and self.find(account, record_type, f"eid:{external}") is not None:
            raise user_error(f"A {record_type} record with this External ID ({external}) already exists.", "externalId")
        record = {k: copy.deepcopy(v) for k, v in body.items()}
        record["id"] = str(next(account.ids))
        record["createdDate"] = record["lastModifiedDate"] = self.stamp()
        if record_type == "customer":
            record.update(balance=0.0, creditHoldOverride=record.get("creditHoldOverride", "AUTO"))
            record.setdefault("entityId", record.get("companyName") or record["id"])
        if record_type in TRANSACTIONS:
            self._transaction(account, record_type, record)
        account.table(record_type)[record["id"]] = record
        return record

    def update(self, account: Account, record_type: str, record: dict[str, Any], body: dict[str, Any]) -> None:
        self._check_fields(record_type, body)
        external = body.get("externalId")
        if external is not None and external != record.get("externalId"):
            clash = self.find(account, record_type, f"eid:{external}")
            if clash is not None:
                raise user_error(f"A {record_type} record with this External ID ({external}) already exists.")
        candidate = {**copy.deepcopy(record), **copy.deepcopy(body)}
        if record_type in TRANSACTIONS and ({"entity", "item"} & set(body)):
            self._transaction(account, record_type, candidate, keep_number=True)
        candidate["lastModifiedDate"] = self.stamp()
        record.clear()
        record.update(candidate)

    def delete(self, account: Account, record_type: str, record: dict[str, Any]) -> None:
        del account.table(record_type)[record["id"]]

    def transform(
        self,
        account: Account,
        source_type: str,
        source: dict[str, Any],
        target: str,
        changes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`!transform`; body fields of the request (except the `item` sublist) are set on the new record."""
        if target not in TRANSFORMS.get(source_type, set()):
            raise NSError(
                400,
                "INVALID_PARAMETER",
                f"Transformation from {source_type} to {target} is not supported.",
                **{"o:errorUrl": f"!transform/{target}"},
            )
        done_flag = {"itemFulfillment": "fulfilled", "invoice": "billed"}.get(target)
        if done_flag and source.get(f"_{done_flag}"):
            raise user_error(f"{source['tranId']} is already fully {done_flag}; there is nothing left to transform.")
        body = {
            "entity": {"id": source["entity"]["id"]},
            "createdFrom": {"id": source["id"], "refName": source.get("tranId")},
            "item": {
                "items": [{k: v for k, v in line.items() if k in LINE_FIELDS} for line in source["item"]["items"]]
            },
        }
        body.update({k: v for k, v in (changes or {}).items() if k != "item"})
        created = self.create(account, target, body)
        if done_flag:
            source[f"_{done_flag}"] = True
            status = "Pending Billing" if done_flag == "fulfilled" and not source.get("_billed") else "Billed"
            if done_flag == "billed" and not source.get("_fulfilled"):
                status = "Pending Fulfillment"
            source["status"] = {"id": status, "refName": status}
            source["lastModifiedDate"] = self.stamp()
        return created

    # -- rules -----------------------------------------------------------------------------------
    def _check_fields(self, record_type: str, body: dict[str, Any]) -> None:
        known = KNOWN_FIELDS["transaction" if record_type in TRANSACTIONS else record_type]
        known = known | RECORD_FIELDS.get(record_type, frozenset())
        if "package" in known and "package" in body:
            _check_packages(body["package"])
        for name in body:
            if name in READ_ONLY:
                raise user_error(f"You cannot set the value of field {name}; it is read-only.", name)
            if name not in known and not name.startswith(CUSTOM_PREFIXES):
                raise NSError(400, "INVALID_CONTENT", f"Invalid field name: {name}.", path=name)

    def _transaction(
        self, account: Account, record_type: str, record: dict[str, Any], *, keep_number: bool = False
    ) -> None:
        customer = self._customer(account, record.get("entity"))
        lines_in = (record.get("item") or {}).get("items") if isinstance(record.get("item"), dict) else None
        if not lines_in:
            raise user_error("You must enter at least one line item for this transaction.", "item")
        lines, total = [], Decimal(0)
        for index, raw in enumerate(lines_in):
            path = f"item.items[{index}]"
            if not isinstance(raw, dict):
                raise user_error("Invalid sublist line.", path)
            unknown = set(raw) - LINE_FIELDS
            if unknown and not all(n.startswith(CUSTOM_PREFIXES) for n in unknown):
                raise NSError(400, "INVALID_CONTENT", f"Invalid field name: {sorted(unknown)[0]}.", path=path)
            item = self._item(account, raw.get("item"), f"{path}.item")
            quantity = _dec(raw.get("quantity", 1), f"{path}.quantity")
            if quantity <= 0:
                raise user_error("Quantity must be greater than 0.", f"{path}.quantity")
            rate = _dec(raw.get("rate", item.get("basePrice", 0)), f"{path}.rate")
            amount = (quantity * rate).quantize(Decimal("0.01"))
            total += amount
            lines.append(
                {
                    **{
                        k: v
                        for k, v in raw.items()
                        if k.startswith(CUSTOM_PREFIXES) or k in ("description", "isClosed")
                    },
                    "line": index + 1,
                    "item": {"id": item["id"], "refName": item.get("itemId", item["id"])},
                    "quantity": float(quantity),
                    "rate": float(rate),
                    "amount": float(amount),
                }
            )
        record["entity"] = {"id": customer["id"], "refName": customer.get("companyName", customer["id"])}
        record["item"] = {"items": lines, "totalResults": len(lines)}
        record["subtotal"] = record["total"] = float(total)
        all_closed = all(line.get("isClosed") is True for line in lines)
        if record_type in ("salesOrder", "invoice", "cashSale") and not all_closed:
            self._check_credit(customer, total)
        record.setdefault("tranDate", datetime.fromtimestamp(self.now(), UTC).date().isoformat())
        if not keep_number:
            prefix = TRANSACTIONS[record_type][1]
            number = account.numbers.get(record_type, 1000) + 1
            account.numbers[record_type] = number
            record["tranId"] = f"{prefix}{number}"
            first = {"salesOrder": "Pending Fulfillment", "invoice": "Open", "creditMemo": "Open"}
            status = first.get(record_type, "Shipped" if record_type == "itemFulfillment" else "Pending Approval")
            record["status"] = {"id": status, "refName": status}
        elif record_type == "salesOrder" and all_closed:
            record["status"] = {"id": "Closed", "refName": "Closed"}
        if record_type == "invoice":
            customer["balance"] = float(Decimal(str(customer.get("balance", 0))) + total)
        elif record_type == "creditMemo":
            customer["balance"] = float(Decimal(str(customer.get("balance", 0))) - total)

    def _customer(self, account: Account, ref: Any) -> dict[str, Any]:
        if not isinstance(ref, dict) or not (ref.get("id") or ref.get("externalId")):
            raise user_error("Please enter value(s) for: Customer", "entity")
        ident = str(ref["id"]) if ref.get("id") else f"eid:{ref['externalId']}"
        customer = self.find(account, "customer", ident)
        if customer is None or customer.get("isInactive"):
            key = ref.get("id") or ref.get("externalId")
            raise NSError(400, "INVALID_KEY_OR_REF", f"Invalid entity reference key {key}.", path="entity")
        return customer

    def _item(self, account: Account, ref: Any, path: str) -> dict[str, Any]:
        if not isinstance(ref, dict) or not (ref.get("id") or ref.get("externalId")):
            raise user_error("Please enter value(s) for: Item", path)
        ident = str(ref["id"]) if ref.get("id") else f"eid:{ref['externalId']}"
        item = self.find(account, "inventoryItem", ident)
        if item is None or item.get("isInactive"):
            key = ref.get("id") or ref.get("externalId")
            raise NSError(400, "INVALID_KEY_OR_REF", f"Invalid item reference key {key} for subsidiary 1.", path=path)
        return item

    def _check_credit(self, customer: dict[str, Any], total: Decimal) -> None:
        override = customer.get("creditHoldOverride", "AUTO")
        limit = customer.get("creditLimit")
        over = limit is not None and Decimal(str(customer.get("balance", 0))) + total > Decimal(str(limit))
        if override == "ON" or (override == "AUTO" and self.settings.enforce_holds and over):
            # NetSuite's exact REST error for a credit hold is not in our reference [U]: USER_ERROR is
            # what user-event validations surface as; the message names the hold.
            raise user_error(
                f"Customer {customer.get('companyName', customer['id'])} is on credit hold: this transaction "
                f"would exceed the credit limit of {Decimal(str(limit or 0)):.2f}.",
                "entity",
            )
