"""Every failure the NetSuite simulator can produce is a classified ConnectorError; the query subsets are strict."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.netsuite import NetSuiteClient
from crossdock.connectors.sandbox.faults import FaultPlan
from crossdock.connectors.sandbox.netsuite import NetSuiteSimulator, create_netsuite_app
from crossdock.connectors.sandbox.netsuite_query import QueryError, parse_q, parse_suiteql, sort_rows
from crossdock.connectors.sandbox.netsuite_records import SUITEQL_TABLES
from crossdock.connectors.sandbox.netsuite_state import NSSettings
from crossdock.connectors.sandbox.serve import free_port
from crossdock.connectors.transport import RetryPolicy
from tests.integration.connectors._erp_fixtures import FAST_RETRY, serve_mounted

ACCOUNT = "TSTDRV42"
CREDS = {"consumer_key": "ck", "consumer_secret": "cs", "token_id": "tk", "token_secret": "ts"}
K, C = FailureKind, FailureCategory


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[NetSuiteSimulator, str]]:
    sim = NetSuiteSimulator()
    with serve_mounted("/netsuite", create_netsuite_app(sim)) as (_, base):
        yield sim, base


@pytest.fixture
def sim(server: tuple[NetSuiteSimulator, str]) -> NetSuiteSimulator:
    sim = server[0]
    sim.reset()
    sim.configure(**NSSettings().model_dump())
    sim.add_account(ACCOUNT, **CREDS)
    sim.seed_customers(
        ACCOUNT,
        [
            {"id": "35006", "externalId": "OK", "companyName": "Good Co", "creditLimit": 1000},
            {"id": "35007", "externalId": "GONE", "companyName": "Inactive Co", "isInactive": True},
            {"id": "35008", "externalId": "NEAR", "companyName": "Near Limit", "creditLimit": 100, "balance": 90},
            {"id": "35009", "externalId": "HOLD", "companyName": "Held Co", "creditHoldOverride": "ON"},
        ],
    )
    sim.seed_items(ACCOUNT, [{"id": "1008", "externalId": "SKU-8", "itemId": "SKU-8", "basePrice": 10.0}])
    return sim


@pytest.fixture
async def ns(server: tuple[NetSuiteSimulator, str], sim: NetSuiteSimulator) -> AsyncIterator[NetSuiteClient]:
    async with NetSuiteClient(server[1], ACCOUNT, **CREDS, retry=FAST_RETRY, max_response_bytes=1_000_000) as client:
        yield client


def so(customer: str = "35006", item: str = "1008", qty: Any = 1, **extra: Any) -> dict[str, Any]:
    return {"entity": {"id": customer}, "item": {"items": [{"item": {"id": item}, "quantity": qty}]}, **extra}


CASES = [
    (
        "unknown item",
        so(item="1009"),
        K.DATA,
        C.SKU_NOT_FOUND,
        "INVALID_KEY_OR_REF",
        "Invalid item reference key 1009 for subsidiary 1.",
    ),
    (
        "inactive customer",
        so(customer="35007"),
        K.DATA,
        C.BAD_CUSTOMER,
        "INVALID_KEY_OR_REF",
        "Invalid entity reference key 35007.",
    ),
    ("over credit limit", so(customer="35008", qty=2), K.DATA, C.CREDIT_HOLD, "USER_ERROR", "credit hold"),
    ("hold override on", so(customer="35009"), K.DATA, C.CREDIT_HOLD, "USER_ERROR", "credit hold"),
    ("no customer", {"item": so()["item"]}, K.DATA, C.VALIDATION, "USER_ERROR", "Please enter value(s) for: Customer"),
    ("no lines", {"entity": {"id": "35006"}}, K.DATA, C.VALIDATION, "USER_ERROR", "at least one line item"),
    ("zero quantity", so(qty=0), K.DATA, C.VALIDATION, "USER_ERROR", "Quantity must be greater than 0."),
    ("bad quantity", so(qty="many"), K.DATA, C.VALIDATION, "USER_ERROR", "Invalid number 'many'."),
    ("unknown field", so(shoeSize=9), K.CONFIG, C.VALIDATION, "INVALID_CONTENT", "Invalid field name: shoeSize."),
    ("read-only field", so(total=5), K.DATA, C.VALIDATION, "USER_ERROR", "read-only"),
]


@pytest.mark.parametrize(("case", "body", "kind", "category", "code", "text"), CASES, ids=[c[0] for c in CASES])
async def test_business_failures_are_classified_and_nothing_is_stored(
    ns: NetSuiteClient,
    sim: NetSuiteSimulator,
    case: str,
    body: dict[str, Any],
    kind: K,
    category: C,
    code: str,
    text: str,
) -> None:
    with pytest.raises(ConnectorError) as caught:
        await ns.create("salesOrder", body)
    assert (caught.value.kind, caught.value.category, caught.value.vendor_code) == (kind, category, code)
    assert caught.value.status == 400 and text in caught.value.message
    assert sim.records(ACCOUNT, "salesOrder") == []


async def test_credit_holds_can_be_switched_off(ns: NetSuiteClient, sim: NetSuiteSimulator) -> None:
    sim.configure(enforce_holds=False)
    assert await ns.create("salesOrder", so(customer="35008", qty=2))


async def test_duplicate_external_id_is_a_duplicate(ns: NetSuiteClient) -> None:
    await ns.create("salesOrder", so(externalId="E-1"))
    with pytest.raises(ConnectorError) as caught:
        await ns.create("salesOrder", so(externalId="E-1"))
    assert (caught.value.kind, caught.value.category) == (K.DATA, C.DUPLICATE)


async def test_missing_record_is_not_found_and_eid_lookup_returns_none(ns: NetSuiteClient) -> None:
    with pytest.raises(ConnectorError) as caught:
        await ns.get("salesOrder", "999999")
    assert (caught.value.category, caught.value.status, caught.value.vendor_code) == (
        C.NOT_FOUND,
        404,
        "NONEXISTENT_ID",
    )
    assert await ns.get_by_external_id("customer", "NOPE") is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("DELETE FROM transaction", "Expected SELECT"),
        ("SELECT id FROM transaction; DROP TABLE x", "Unexpected character ';'"),
        ("SELECT id FROM secrets", "unknown record type 'secrets'"),
        ("SELECT password FROM customer", "Field 'password' for record 'customer' was not found."),
        ("SELECT id FROM item WHERE itemid = 'x' UNION SELECT id FROM customer", "near 'UNION'"),
        ("SELECT id FROM item WHERE itemid LIKE", "Expected a literal"),
    ],
)
async def test_unsupported_suiteql_is_a_400_with_error_details(ns: NetSuiteClient, query: str, message: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        [row async for row in ns.suiteql(query)]
    assert (caught.value.kind, caught.value.category, caught.value.vendor_code) == (
        K.CONFIG,
        C.VALIDATION,
        "INVALID_PARAMETER",
    )
    assert caught.value.status == 400 and message in caught.value.message


async def test_bad_collection_query_is_a_configuration_error(ns: NetSuiteClient) -> None:
    with pytest.raises(ConnectorError) as caught:
        [row async for row in ns.list("customer", q='email LOOKS_LIKE "x"')]
    assert (caught.value.kind, caught.value.vendor_code) == (K.CONFIG, "INVALID_PARAMETER")


async def test_server_errors_retry_then_surface_as_transient(ns: NetSuiteClient, sim: NetSuiteSimulator) -> None:
    sim.faults.set(FaultPlan(error_rate=1.0, error_status=503))
    with pytest.raises(ConnectorError) as caught:
        await ns.get("customer", "35006")
    assert (caught.value.kind, caught.value.category) == (K.TRANSIENT, C.CONNECTION)
    assert sim.faults.injected["error"] == FAST_RETRY.max_attempts


async def test_concurrency_429_that_outlasts_retries_is_rate_limit(
    server: tuple[NetSuiteSimulator, str], sim: NetSuiteSimulator
) -> None:
    sim.add_account(ACCOUNT, **CREDS, concurrency_limit=1)
    sim.configure(latency_ms=50)
    async with NetSuiteClient(server[1], ACCOUNT, **CREDS, retry=RetryPolicy(1, 0.001, 0.001)) as client:
        results = await asyncio.gather(*(client.get("customer", "35006") for _ in range(2)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, ConnectorError)]
    assert len(errors) == 1
    assert (errors[0].kind, errors[0].category, errors[0].status) == (K.TRANSIENT, C.RATE_LIMIT, 429)
    assert errors[0].vendor_code is None  # attempts ran out: the transport reports the 429 itself


async def test_unreachable_server_is_a_connection_failure() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with NetSuiteClient(url, ACCOUNT, **CREDS, retry=RetryPolicy(2, 0.001, 0.001)) as client:
        with pytest.raises(ConnectorError) as caught:
            await client.get("customer", "1")
    assert (caught.value.kind, caught.value.category) == (K.TRANSIENT, C.CONNECTION)


@pytest.mark.parametrize(
    ("mode", "vendor_code", "kind", "category"),
    [
        ("malformed_json", "malformed_response", K.TRANSIENT, C.CONNECTION),
        ("missing_fields", "unexpected_response", K.TRANSIENT, C.CONNECTION),
        ("huge", "response_too_large", K.DATA, C.VALIDATION),
    ],
)
async def test_broken_responses_are_classified_not_crashes(
    ns: NetSuiteClient, sim: NetSuiteSimulator, mode: str, vendor_code: str, kind: K, category: C
) -> None:
    sim.corrupt_next(mode)
    with pytest.raises(ConnectorError) as caught:
        await ns.get("customer", "35006")
    assert (caught.value.vendor_code, caught.value.kind, caught.value.category) == (vendor_code, kind, category)


async def test_missing_location_header_is_classified(ns: NetSuiteClient, sim: NetSuiteSimulator) -> None:
    sim.corrupt_next("missing_fields", method="POST")
    with pytest.raises(ConnectorError) as caught:
        await ns.create("customer", {"companyName": "Loc Less"})
    assert (caught.value.vendor_code, caught.value.kind) == ("unexpected_response", K.TRANSIENT)


async def test_huge_request_is_refused_as_data_error(ns: NetSuiteClient, sim: NetSuiteSimulator) -> None:
    sim.configure(max_request_bytes=20_000)
    body = so(memo="x" * 30_000)
    with pytest.raises(ConnectorError) as caught:
        await ns.create("salesOrder", body)
    assert (caught.value.kind, caught.value.category, caught.value.status) == (K.DATA, C.VALIDATION, 413)
    assert sim.records(ACCOUNT, "salesOrder") == []


# -- the query parsers themselves ------------------------------------------------------------------
ROWS = [
    {"id": "1", "tranid": "SO1", "type": "SalesOrd", "foreigntotal": "100.5", "status": "B", "memo": None},
    {"id": "2", "tranid": "SO2", "type": "SalesOrd", "foreigntotal": "20", "status": "F", "memo": "rush"},
    {"id": "3", "tranid": "INV1", "type": "CustInvc", "foreigntotal": "100.5", "status": "A", "memo": "it's"},
]


@pytest.mark.parametrize(
    ("where", "ids"),
    [
        ("type = 'SalesOrd'", ["1", "2"]),
        ("type = 'SalesOrd' AND foreigntotal > 50", ["1"]),
        ("type = 'CustInvc' OR status = 'F' AND foreigntotal < 50", ["2", "3"]),
        ("(type = 'CustInvc' OR status = 'F') AND foreigntotal < 50", ["2"]),
        ("NOT type = 'SalesOrd'", ["3"]),
        ("memo IS NULL", ["1"]),
        ("memo IS NOT NULL AND memo LIKE 'it''%'", ["3"]),
        ("tranid NOT LIKE 'SO%'", ["3"]),
        ("id IN (1, 3)", ["1", "3"]),
        ("foreigntotal >= 20 AND foreigntotal <= 20", ["2"]),
        ("status <> 'B' AND status != 'A'", ["2"]),
    ],
)
def test_suiteql_where(where: str, ids: list[str]) -> None:
    query = parse_suiteql(f"select id from transaction where {where}", SUITEQL_TABLES)
    assert query.where is not None
    assert [r["id"] for r in ROWS if query.where(r)] == ids


def test_suiteql_order_by_and_columns() -> None:
    query = parse_suiteql("SELECT id, tranid FROM transaction ORDER BY foreigntotal DESC, tranid", SUITEQL_TABLES)
    assert query.columns == ["id", "tranid"] and query.table == "transaction"
    assert [r["tranid"] for r in sort_rows(ROWS, query.order)] == ["INV1", "SO1", "SO2"]


def test_q_filter_operators() -> None:
    records = [
        {"id": "1", "email": "a@x.example", "lastModifiedDate": "2024-05-02T10:00:00Z", "entity": {"id": "7"}},
        {"id": "2", "email": "", "lastModifiedDate": "2024-04-30T10:00:00Z", "entity": {"id": "8"}},
    ]
    fields = {"email", "lastModifiedDate", "entity"}

    def ids(q: str) -> list[str]:
        predicate = parse_q(q, fields)
        return [r["id"] for r in records if predicate(r)]

    assert ids('lastModifiedDate ON_OR_AFTER "5/1/2024"') == ["1"]
    assert ids('lastModifiedDate BEFORE "2024-05-01"') == ["2"]
    assert ids("email EMPTY") == ["2"]
    assert ids('email START_WITH "a@" OR entity IS "8"') == ["1", "2"]
    assert ids('email CONTAIN "x.ex" AND entity IS 7') == ["1"]
    for bad in ["email IS", 'nope IS "x"', 'email LIKE "x"', 'email IS "x" XOR email IS "y"']:
        with pytest.raises(QueryError):
            parse_q(bad, fields)
