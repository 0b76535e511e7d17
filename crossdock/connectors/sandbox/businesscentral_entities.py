"""Business Central API v2.0 entity shapes: field names, defaults and which fields are read-only.

Field names follow Microsoft's API v2.0 reference (salesOrder, salesOrderLine, item, customer,
salesInvoice, salesCreditMemo, salesShipment); only the fields integrations use are modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_SHIP_TO = {
    "shipToName": "",
    "shipToContact": "",
    "shipToAddressLine1": "",
    "shipToAddressLine2": "",
    "shipToCity": "",
    "shipToCountry": "",
    "shipToState": "",
    "shipToPostCode": "",
}
_TOTALS = {
    "discountAmount": 0.0,
    "totalAmountExcludingTax": 0.0,
    "totalTaxAmount": 0.0,
    "totalAmountIncludingTax": 0.0,
}
_DOC_HEAD = {
    "id": None,
    "number": None,
    "externalDocumentNumber": "",
    "postingDate": None,
    "customerId": None,
    "customerNumber": "",
    "customerName": "",
    "billToName": "",
    "billToCustomerId": None,
    "billToCustomerNumber": "",
    **_SHIP_TO,
    "currencyCode": "",
    "pricesIncludeTax": False,
    "phoneNumber": "",
    "email": "",
    **_TOTALS,
    "status": "Draft",
    "lastModifiedDateTime": None,
}
_DOC_READ_ONLY = frozenset(
    {"id", "number", "customerName", "totalAmountExcludingTax", "totalTaxAmount", "totalAmountIncludingTax"}
    | {"status", "lastModifiedDateTime", "fullyShipped", "remainingAmount", "invoiceNumber", "orderNumber"}
)

_LINE = {
    "id": None,
    "documentId": None,
    "sequence": 0,
    "itemId": None,
    "accountId": None,
    "lineType": "Item",
    "lineObjectNumber": "",
    "description": "",
    "unitOfMeasureCode": "PCS",
    "quantity": 0.0,
    "unitPrice": 0.0,
    "discountAmount": 0.0,
    "discountPercent": 0.0,
    "discountAppliedBeforeTax": False,
    "amountExcludingTax": 0.0,
    "taxCode": "",
    "taxPercent": 0.0,
    "totalTaxAmount": 0.0,
    "amountIncludingTax": 0.0,
    "netAmount": 0.0,
    "netTaxAmount": 0.0,
    "netAmountIncludingTax": 0.0,
    "shipmentDate": None,
    "shippedQuantity": 0.0,
    "invoicedQuantity": 0.0,
    "invoiceQuantity": 0.0,
    "shipQuantity": 0.0,
}
_LINE_READ_ONLY = frozenset(
    {"id", "documentId", "amountExcludingTax", "totalTaxAmount", "amountIncludingTax", "netAmount"}
    | {"netTaxAmount", "netAmountIncludingTax", "shippedQuantity", "invoicedQuantity", "taxPercent"}
)


@dataclass(frozen=True)
class EntitySpec:
    """One entity set: its fields (name → default), read-only fields, methods, lines and actions."""

    name: str
    fields: dict[str, Any]
    read_only: frozenset[str]
    methods: frozenset[str] = frozenset({"GET", "POST", "PATCH", "DELETE"})
    lines: str | None = None
    number_prefix: str | None = None
    number_start: int = 1000
    actions: frozenset[str] = field(default_factory=frozenset)
    is_document: bool = False


ENTITIES: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in [
        EntitySpec(
            "salesOrders",
            {
                **_DOC_HEAD,
                "orderDate": None,
                "requestedDeliveryDate": None,
                "partialShipping": False,
                "fullyShipped": False,
            },
            _DOC_READ_ONLY,
            lines="salesOrderLines",
            number_prefix="S-ORD",
            number_start=101001,
            actions=frozenset({"Microsoft.NAV.shipAndInvoice"}),
            is_document=True,
        ),
        EntitySpec(
            "salesInvoices",
            {
                **_DOC_HEAD,
                "invoiceDate": None,
                "dueDate": None,
                "orderId": None,
                "orderNumber": "",
                "remainingAmount": 0.0,
            },
            _DOC_READ_ONLY,
            lines="salesInvoiceLines",
            number_prefix="S-INV",
            number_start=103001,
            is_document=True,
        ),
        EntitySpec(
            "salesCreditMemos",
            {
                **_DOC_HEAD,
                "creditMemoDate": None,
                "invoiceId": None,
                "invoiceNumber": "",
                "customerReturnReasonId": None,
            },
            _DOC_READ_ONLY,
            lines="salesCreditMemoLines",
            number_prefix="S-CR",
            number_start=104001,
            actions=frozenset({"Microsoft.NAV.post", "Microsoft.NAV.cancel"}),
            is_document=True,
        ),
        EntitySpec(
            "salesShipments",
            {
                **{k: v for k, v in _DOC_HEAD.items() if k not in _TOTALS and k != "status"},
                "orderNumber": "",
                "shipmentDate": None,
            },
            _DOC_READ_ONLY,
            methods=frozenset({"GET"}),
            lines="salesShipmentLines",
            number_prefix="S-SHPT",
            number_start=102001,
            is_document=True,
        ),
        EntitySpec(
            "items",
            {
                "id": None,
                "number": None,
                "displayName": "",
                "type": "Inventory",
                "itemCategoryCode": "",
                "blocked": False,
                "gtin": "",
                "inventory": 0.0,
                "unitPrice": 0.0,
                "priceIncludesTax": False,
                "unitCost": 0.0,
                "taxGroupCode": "",
                "baseUnitOfMeasureCode": "PCS",
                "lastModifiedDateTime": None,
            },
            frozenset({"id", "inventory", "lastModifiedDateTime"}),
            number_start=1000,
        ),
        EntitySpec(
            "customers",
            {
                "id": None,
                "number": None,
                "displayName": "",
                "type": "Company",
                "addressLine1": "",
                "addressLine2": "",
                "city": "",
                "state": "",
                "country": "",
                "postalCode": "",
                "phoneNumber": "",
                "email": "",
                "website": "",
                "taxLiable": False,
                "currencyCode": "",
                "blocked": " ",
                "balanceDue": 0.0,
                "creditLimit": 0.0,
                "lastModifiedDateTime": None,
            },
            frozenset({"id", "balanceDue", "lastModifiedDateTime"}),
            number_start=10000,
        ),
    ]
}

LINE_FIELDS: dict[str, Any] = _LINE
LINE_READ_ONLY: frozenset[str] = _LINE_READ_ONLY
LINE_SETS = {spec.lines: spec.name for spec in ENTITIES.values() if spec.lines}
COMPANY_FIELDS = ("id", "systemVersion", "name", "displayName", "businessProfileId", "systemCreatedAt")

# BC limits Code[35]/Text[100] etc. per table field; these are the ones integrations trip over.
MAX_LENGTHS = {
    "externalDocumentNumber": 35,
    "number": 20,
    "customerNumber": 20,
    "lineObjectNumber": 20,
    "displayName": 100,
    "description": 100,
    "shipToName": 100,
    "email": 80,
}
