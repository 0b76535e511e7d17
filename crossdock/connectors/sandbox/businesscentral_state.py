"""The Business Central simulator's in-memory companies and the business rules BC applies on writes.

Rules modelled (errors shaped as BC's `{"error":{"code","message"}}` with a CorrelationId suffix):
ETag/If-Match concurrency, deep insert of document lines with totals computed from the lines,
insufficient inventory, unknown item or customer, string length limits, blocked customers and the
credit limit, and the `shipAndInvoice` / credit memo `post` actions.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crossdock.connectors.sandbox.businesscentral_entities import (
    ENTITIES,
    LINE_FIELDS,
    LINE_READ_ONLY,
    MAX_LENGTHS,
    EntitySpec,
)


class BCSettings(BaseModel):
    """Knobs of the simulated tenant (changeable at runtime through `POST /_control/settings`)."""

    model_config = ConfigDict(extra="forbid")

    token_lifetime_s: float = Field(3599, gt=0, description="Lifetime of issued access tokens.")
    max_page_size: int = Field(20000, ge=1, description="Server-driven page size (BC online: 20,000).")
    rate_limit: int = Field(6000, ge=1, description="Requests per principal per sliding window.")
    rate_window_s: float = Field(300, gt=0, description="Length of the sliding rate window.")
    max_concurrent: int = Field(5, ge=1, description="Requests a principal may have in flight.")
    max_queued: int = Field(95, ge=0, description="Requests queued behind the concurrent ones; more → 429.")
    enforce_inventory: bool = Field(True, description="Reject lines and shipments beyond item inventory.")
    enforce_credit_limit: bool = Field(True, description="Reject orders that push a customer past creditLimit.")
    tax_percent: float = Field(0, ge=0, description="Tax rate applied to every line.")
    max_request_bytes: int = Field(10_000_000, ge=1, description="Request bodies above this answer 413.")
    latency_ms: float = Field(
        0, ge=0, description="Processing time per data request, spent holding a concurrency slot."
    )


class BCError(Exception):
    """A Business Central error response."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = f"{message}  CorrelationId:  {uuid.uuid4()}."
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def not_found(what: str) -> BCError:
    return BCError(404, "BadRequest_NotFound", f"The {what} does not exist. Identification fields and values: Id")


@dataclass
class Company:
    id: str
    name: str
    tables: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    lines: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # documentId → {lineId → line}
    versions: dict[str, int] = field(default_factory=dict)  # record id → row version
    sequences: dict[str, int] = field(default_factory=dict)

    def table(self, entity: str) -> dict[str, dict[str, Any]]:
        return self.tables.setdefault(entity, {})

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "systemVersion": "24.0.16410.0",
            "name": self.name,
            "displayName": self.name,
            "businessProfileId": "",
            "systemCreatedAt": "2024-01-01T00:00:00Z",
        }


def _money(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _dec(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BCError(400, "BadRequest", f"Cannot convert a value to target type 'Edm.Decimal' for '{name}'")
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:
        raise BCError(400, "BadRequest", f"Cannot convert a value to target type 'Edm.Decimal' for '{name}'") from exc


class CompanyStore:
    """All companies of one simulated environment and the write rules BC applies to them."""

    def __init__(self, settings: BCSettings, now: Callable[[], float]) -> None:
        self.settings = settings
        self.now = now
        self.companies: dict[str, Company] = {}
        self.etag_conflicts = 0

    # -- lookup --------------------------------------------------------------------------------
    def company(self, company_id: str) -> Company:
        company = self.companies.get(company_id.lower())
        if company is None:
            raise BCError(
                404, "BadRequest_NotFound", "The company does not exist. Identification fields and values: Id"
            )
        return company

    def record(self, company: Company, entity: str, record_id: str) -> dict[str, Any]:
        record = company.table(entity).get(record_id.lower())
        if record is None:
            raise not_found(entity[:-1])
        return record

    def line(self, company: Company, doc_id: str, line_id: str) -> dict[str, Any]:
        line = company.lines.get(doc_id, {}).get(line_id.lower())
        if line is None:
            raise not_found("line")
        return line

    def doc_lines(self, company: Company, doc_id: str) -> list[dict[str, Any]]:
        return sorted(company.lines.get(doc_id, {}).values(), key=lambda ln: ln["sequence"])

    def etag(self, company: Company, record_id: str) -> str:
        version = company.versions.get(record_id, 0)
        digest = hashlib.sha1(f"{record_id}:{version}".encode(), usedforsecurity=False).hexdigest()[:24]
        return 'W/"' + base64.b64encode(f"'{version};{digest};'".encode()).decode() + '"'

    def find_by_number(self, company: Company, entity: str, number: str) -> dict[str, Any] | None:
        for record in company.table(entity).values():
            if record.get("number") == number:
                return record
        return None

    # -- seeding (control API) -----------------------------------------------------------------
    def add_company(self, name: str, company_id: str | None = None) -> Company:
        cid = (company_id or str(uuid.uuid4())).lower()
        company = Company(cid, name)
        self.companies[cid] = company
        return company

    def seed(self, company: Company, entity: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert master data as-is (read-only fields such as `inventory` and `balanceDue` allowed)."""
        spec = ENTITIES[entity]
        created = []
        for row in rows:
            unknown = set(row) - set(spec.fields)
            if unknown:
                raise BCError(400, "BadRequest", f"The property '{sorted(unknown)[0]}' does not exist on {entity}")
            record = {**copy.deepcopy(spec.fields), **row}
            record["id"] = str(row.get("id") or uuid.uuid4()).lower()
            record["number"] = row.get("number") or self._next_number(company, spec)
            self.touch(company, record)
            company.table(entity)[record["id"]] = record
            created.append(record)
        return created

    def set_inventory(self, company: Company, item_number: str, quantity: float) -> dict[str, Any]:
        item = self.find_by_number(company, "items", item_number)
        if item is None:
            raise self._item_missing(item_number)
        item["inventory"] = float(quantity)
        self.touch(company, item)
        return item

    # -- writes --------------------------------------------------------------------------------
    def create(self, company: Company, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        spec = ENTITIES[entity]
        lines_in = body.pop(spec.lines, None) if spec.lines else None
        self._check_fields(spec.fields, spec.read_only - {"number"}, body, entity)
        record = {**copy.deepcopy(spec.fields), **body}
        record["id"] = str(uuid.uuid4())
        if spec.number_prefix or not record.get("number"):
            record["number"] = self._next_number(company, spec)
        elif self.find_by_number(company, entity, record["number"]) is not None:
            raise BCError(
                400,
                "Internal_EntityWithSameKeyExists",
                f"The record in table {entity[:-1]} already exists. Identification fields and values: "
                f"No.='{record['number']}'",
            )
        if spec.is_document:
            self._apply_customer(company, record)
            today = datetime.fromtimestamp(self.now(), UTC).date().isoformat()
            for date_field in ("orderDate", "invoiceDate", "creditMemoDate", "postingDate"):
                if date_field in record and not record[date_field]:
                    record[date_field] = today
        staged: list[dict[str, Any]] = []
        if lines_in is not None:
            if not isinstance(lines_in, list):
                raise BCError(400, "BadRequest", f"Invalid Request Body: '{spec.lines}' must be a collection")
            staged = [self._build_line(company, record["id"], row, (i + 1) * 10000) for i, row in enumerate(lines_in)]
        if spec.is_document:
            self._total(record, staged)
            self._check_credit(company, record)
        company.table(entity)[record["id"]] = record
        for line in staged:
            company.lines.setdefault(record["id"], {})[line["id"]] = line
            self.touch(company, line)
        self.touch(company, record)
        return record

    def create_line(self, company: Company, entity: str, doc_id: str, body: dict[str, Any]) -> dict[str, Any]:
        doc = self.record(company, entity, doc_id)
        self._require_draft(doc)
        existing = self.doc_lines(company, doc["id"])
        sequence = (existing[-1]["sequence"] if existing else 0) + 10000
        line = self._build_line(company, doc["id"], body, sequence, explicit_sequence=True)
        self._total(doc, [*existing, line])
        self._check_credit(company, doc)
        company.lines.setdefault(doc["id"], {})[line["id"]] = line
        self.touch(company, line)
        self.touch(company, doc)
        return line

    def check_if_match(self, company: Company, record_id: str, if_match: str | None) -> None:
        if if_match is None or not if_match.strip():
            raise BCError(
                400,
                "BadRequest_InvalidToken",
                "Could not validate the client concurrency token required by the service. "
                "Please provide a valid token in the client request.",
            )
        if if_match.strip() == "*":
            return
        tags = {tag.strip() for tag in if_match.split(",")}
        if self.etag(company, record_id) not in tags:
            self.etag_conflicts += 1
            raise BCError(409, "Request_EntityChanged", "Another user has already changed the record.")

    def update(self, company: Company, entity: str, record_id: str, body: dict[str, Any]) -> dict[str, Any]:
        spec = ENTITIES[entity]
        record = self.record(company, entity, record_id)
        body.pop("@odata.etag", None)
        self._check_fields(
            spec.fields, spec.read_only | {"number"} if spec.number_prefix else spec.read_only, body, entity
        )
        if spec.is_document:
            self._require_draft(record)
            candidate = {**record, **body}
            if {"customerNumber", "customerId"} & set(body):
                self._apply_customer(company, candidate)
            self._check_credit(company, candidate)
            record.update(candidate)
        else:
            record.update(body)
        self.touch(company, record)
        return record

    def update_line(self, company: Company, entity: str, doc_id: str, line_id: str, body: dict[str, Any]) -> Any:
        doc = self.record(company, entity, doc_id)
        self._require_draft(doc)
        line = self.line(company, doc["id"], line_id)
        body.pop("@odata.etag", None)
        self._check_fields(LINE_FIELDS, LINE_READ_ONLY, body, "line")
        rebuilt = self._build_line(company, doc["id"], {**line, **body}, line["sequence"], keep_id=line["id"])
        others = [ln for ln in self.doc_lines(company, doc["id"]) if ln["id"] != line["id"]]
        self._total(doc, [*others, rebuilt])
        self._check_credit(company, doc)
        line.update(rebuilt)
        self.touch(company, line)
        self.touch(company, doc)
        return line

    def delete(self, company: Company, entity: str, record_id: str) -> None:
        record = self.record(company, entity, record_id)
        del company.table(entity)[record["id"]]
        company.lines.pop(record["id"], None)

    def delete_line(self, company: Company, entity: str, doc_id: str, line_id: str) -> None:
        doc = self.record(company, entity, doc_id)
        line = self.line(company, doc["id"], line_id)
        del company.lines[doc["id"]][line["id"]]
        self._total(doc, self.doc_lines(company, doc["id"]))
        self.touch(company, doc)

    # -- rules ---------------------------------------------------------------------------------
    def touch(self, company: Company, record: dict[str, Any]) -> None:
        company.versions[record["id"]] = company.versions.get(record["id"], 0) + 1
        stamp = datetime.fromtimestamp(self.now(), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if "lastModifiedDateTime" in record or "sequence" not in record:
            record["lastModifiedDateTime"] = stamp

    def _next_number(self, company: Company, spec: EntitySpec) -> str:
        value = company.sequences.get(spec.name, spec.number_start)
        company.sequences[spec.name] = value + 1
        return f"{spec.number_prefix}{value}" if spec.number_prefix else str(value)

    def _check_fields(self, fields: dict[str, Any], read_only: frozenset[str], body: dict[str, Any], what: str) -> None:
        for name, value in body.items():
            if name not in fields:
                raise BCError(
                    400,
                    "BadRequest",
                    f"The property '{name}' does not exist on type 'Microsoft.NAV.{what}'. Make sure to only use "
                    "property names that are defined by the type or mark the type as open type.",
                )
            if name in read_only:
                raise BCError(400, "BadRequest_InvalidOperation", f"Control '{name}' is read-only.")
            limit = MAX_LENGTHS.get(name)
            if limit is not None and isinstance(value, str) and len(value) > limit:
                raise BCError(
                    400,
                    "Application_StringExceededLength",
                    f"The length of the string is {len(value)}, but it must be less than or equal to {limit} "
                    f"characters. Value: {value}",
                )

    def _require_draft(self, doc: dict[str, Any]) -> None:
        if doc.get("status") not in (None, "Draft", "Open"):
            raise BCError(400, "Application_DialogException", f"Status must be equal to 'Open' in {doc['number']}.")

    def _apply_customer(self, company: Company, record: dict[str, Any]) -> None:
        customers = company.table("customers")
        customer = None
        if record.get("customerId"):
            customer = customers.get(str(record["customerId"]).lower())
            if customer is None:
                raise BCError(
                    400,
                    "Internal_RecordNotFound",
                    f"The Customer does not exist. Identification fields and values: Id='{record['customerId']}'",
                )
        elif record.get("customerNumber"):
            customer = self.find_by_number(company, "customers", record["customerNumber"])
            if customer is None:
                raise BCError(
                    400,
                    "Internal_RecordNotFound",
                    f"The Customer does not exist. Identification fields and values: No.='{record['customerNumber']}'",
                )
        if customer is None:
            raise BCError(400, "Application_DialogException", "A customerNumber or a customerID must be provided.")
        if customer["blocked"] in ("All", "Ship", "Invoice"):
            raise BCError(
                400,
                "Application_DialogException",
                f"You cannot create this type of document when Customer {customer['number']} is blocked with type "
                f"{customer['blocked']}.",
            )
        record["customerId"] = customer["id"]
        record["customerNumber"] = customer["number"]
        record["customerName"] = customer["displayName"]
        record["billToCustomerId"] = record.get("billToCustomerId") or customer["id"]
        record["billToCustomerNumber"] = record.get("billToCustomerNumber") or customer["number"]
        record["billToName"] = record.get("billToName") or customer["displayName"]
        if "shipToName" in record and not record["shipToName"]:
            record["shipToName"] = customer["displayName"]

    def _item_missing(self, number: str) -> BCError:
        return BCError(
            400, "Internal_RecordNotFound", f"The Item does not exist. Identification fields and values: No.='{number}'"
        )

    def _build_line(
        self,
        company: Company,
        doc_id: str,
        row: Any,
        sequence: int,
        *,
        explicit_sequence: bool = False,
        keep_id: str | None = None,
    ) -> dict[str, Any]:
        if not isinstance(row, dict):
            raise BCError(400, "BadRequest", "Invalid Request Body")
        if keep_id is None:
            self._check_fields(LINE_FIELDS, LINE_READ_ONLY, row, "salesOrderLine")
        line = {**copy.deepcopy(LINE_FIELDS), **row, "id": keep_id or str(uuid.uuid4()), "documentId": doc_id}
        if not row.get("sequence") or explicit_sequence:
            line["sequence"] = row.get("sequence") or sequence
        if line["lineType"] == "Item":
            item = None
            if line.get("itemId"):
                item = company.table("items").get(str(line["itemId"]).lower())
                if item is None:
                    raise BCError(
                        400,
                        "Internal_RecordNotFound",
                        f"The Item does not exist. Identification fields and values: Id='{line['itemId']}'",
                    )
            elif line.get("lineObjectNumber"):
                item = self.find_by_number(company, "items", line["lineObjectNumber"])
                if item is None:
                    raise self._item_missing(line["lineObjectNumber"])
            else:
                raise BCError(
                    400, "Application_DialogException", "You must specify an item (itemId or lineObjectNumber)."
                )
            if item["blocked"]:
                raise BCError(
                    400, "Application_DialogException", f"Blocked must be equal to 'No' in Item: No.={item['number']}."
                )
            line["itemId"] = item["id"]
            line["lineObjectNumber"] = item["number"]
            line["description"] = line["description"] or item["displayName"]
            if "unitPrice" not in row:
                line["unitPrice"] = item["unitPrice"]
        quantity = _dec(line["quantity"], "quantity")
        line["quantity"] = float(quantity)
        line["unitPrice"] = float(_dec(line["unitPrice"], "unitPrice"))
        if quantity < 0:
            raise BCError(400, "Application_DialogException", "Quantity must be positive.")
        self.check_inventory(company, line, float(quantity))
        gross = quantity * _dec(line["unitPrice"], "unitPrice")
        discount = _dec(line["discountAmount"], "discountAmount")
        if line["discountPercent"] and "discountAmount" not in row:
            discount = gross * _dec(line["discountPercent"], "discountPercent") / 100
        net = gross - discount
        tax = net * Decimal(str(self.settings.tax_percent)) / 100
        line.update(
            discountAmount=_money(discount),
            amountExcludingTax=_money(net),
            netAmount=_money(net),
            taxPercent=self.settings.tax_percent,
            totalTaxAmount=_money(tax),
            netTaxAmount=_money(tax),
            amountIncludingTax=_money(net + tax),
            netAmountIncludingTax=_money(net + tax),
        )
        return line

    def check_inventory(self, company: Company, line: dict[str, Any], quantity: float) -> None:
        if not self.settings.enforce_inventory or line.get("lineType") != "Item":
            return
        item = company.table("items").get(str(line.get("itemId") or "").lower())
        if item is not None and item["type"] == "Inventory" and quantity > item["inventory"]:
            raise BCError(
                400,
                "Application_DialogException",
                f"You have insufficient quantity of Item {item['number']} on inventory.",
            )

    def _total(self, doc: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        if "totalAmountIncludingTax" not in doc:
            return
        net = sum((Decimal(str(ln["netAmount"])) for ln in lines), Decimal(0))
        tax = sum((Decimal(str(ln["netTaxAmount"])) for ln in lines), Decimal(0))
        doc["discountAmount"] = _money(sum((Decimal(str(ln["discountAmount"])) for ln in lines), Decimal(0)))
        doc["totalAmountExcludingTax"] = _money(net)
        doc["totalTaxAmount"] = _money(tax)
        doc["totalAmountIncludingTax"] = _money(net + tax)

    def _check_credit(self, company: Company, doc: dict[str, Any]) -> None:
        if not self.settings.enforce_credit_limit or "totalAmountIncludingTax" not in doc:
            return
        customer = company.table("customers").get(str(doc.get("customerId") or "").lower())
        if customer is None or not customer["creditLimit"]:
            return
        exposure = Decimal(str(customer["balanceDue"])) + Decimal(str(doc["totalAmountIncludingTax"]))
        if exposure > Decimal(str(customer["creditLimit"])):
            raise BCError(
                400,
                "Application_DialogException",
                f"The customer's credit limit has been exceeded. Customer {customer['number']} has a credit limit of "
                f"{_money(Decimal(str(customer['creditLimit']))):.2f}; outstanding plus this document is "
                f"{_money(exposure):.2f}.",
            )
