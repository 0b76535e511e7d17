"""Every failure the Business Central simulator can produce reaches the caller as a classified ConnectorError."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from crossdock.connectors.businesscentral import BusinessCentralClient
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.sandbox.businesscentral import BusinessCentralSimulator, create_businesscentral_app
from crossdock.connectors.sandbox.businesscentral_state import BCSettings
from crossdock.connectors.sandbox.faults import FaultPlan
from crossdock.connectors.sandbox.serve import free_port
from crossdock.connectors.transport import RetryPolicy
from tests.integration.connectors._erp_fixtures import BC_CUSTOMERS, BC_ITEMS, FAST_RETRY, serve_mounted

COMPANY = "11111111-2222-3333-4444-555555555555"
K, C = FailureKind, FailureCategory


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[BusinessCentralSimulator, str]]:
    sim = BusinessCentralSimulator()
    with serve_mounted("/businesscentral", create_businesscentral_app(sim)) as (_, base):
        yield sim, base


@pytest.fixture
def sim(server: tuple[BusinessCentralSimulator, str]) -> BusinessCentralSimulator:
    sim = server[0]
    sim.reset(keep_clients=False)
    sim.configure(**BCSettings().model_dump())
    sim.add_client("app", "secret")
    sim.add_company("CRONUS", COMPANY)
    sim.seed_items(COMPANY, BC_ITEMS)
    sim.seed_customers(COMPANY, BC_CUSTOMERS)
    return sim


@pytest.fixture
async def bc(server: tuple[BusinessCentralSimulator, str], sim: BusinessCentralSimulator) -> AsyncIterator[Any]:
    client = BusinessCentralClient(
        server[1], "tenant", "production", COMPANY, "app", "secret", retry=FAST_RETRY, max_response_bytes=1_000_000
    )
    async with client:
        yield client


def order(external: str = "#1", customer: str = "C0001", item: str = "1000", qty: float = 1) -> dict[str, Any]:
    return {
        "externalDocumentNumber": external,
        "customerNumber": customer,
        "salesOrderLines": [{"lineObjectNumber": item, "quantity": qty}],
    }


BUSINESS_ERRORS = [
    ("insufficient inventory", order(qty=11), K.DATA, C.INSUFFICIENT_INVENTORY, "Application_DialogException"),
    ("unknown item", order(item="NOPE-9"), K.DATA, C.SKU_NOT_FOUND, "Internal_RecordNotFound"),
    ("unknown customer", order(customer="C9999"), K.DATA, C.BAD_CUSTOMER, "Internal_RecordNotFound"),
    ("blocked customer", order(customer="C0003"), K.DATA, C.CREDIT_HOLD, "Application_DialogException"),
    ("over credit limit", order(customer="C0002", qty=1), K.DATA, C.CREDIT_HOLD, "Application_DialogException"),
    ("too long", order(external="X" * 36), K.DATA, C.VALIDATION, "Application_StringExceededLength"),
    ("unknown field", {**order(), "shoeSize": 9}, K.CONFIG, C.VALIDATION, "BadRequest"),
    ("bad number", order(qty="lots"), K.DATA, C.VALIDATION, "BadRequest"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    ("case", "body", "kind", "category", "code"), BUSINESS_ERRORS, ids=[c[0] for c in BUSINESS_ERRORS]
)
async def test_business_rule_failures_are_classified_and_nothing_is_stored(
    bc: BusinessCentralClient,
    sim: BusinessCentralSimulator,
    case: str,
    body: dict[str, Any],
    kind: FailureKind,
    category: FailureCategory,
    code: str,
) -> None:
    with pytest.raises(ConnectorError) as caught:
        await bc.create("salesOrders", body)
    assert (caught.value.kind, caught.value.category, caught.value.vendor_code) == (kind, category, code)
    assert caught.value.status == 400
    assert sim.records(COMPANY, "salesOrders") == []


async def test_insufficient_inventory_message_is_bcs_own(bc: BusinessCentralClient) -> None:
    with pytest.raises(ConnectorError) as caught:
        await bc.create("salesOrders", order(qty=11))
    assert "You have insufficient quantity of Item 1000 on inventory.  CorrelationId:" in caught.value.message


async def test_inventory_rule_can_be_switched_off(bc: BusinessCentralClient, sim: BusinessCentralSimulator) -> None:
    sim.configure(enforce_inventory=False)
    created = await bc.create("salesOrders", order(qty=11))
    assert created["totalAmountIncludingTax"] == 1100.0


async def test_missing_record_is_not_found(bc: BusinessCentralClient) -> None:
    with pytest.raises(ConnectorError) as caught:
        await bc.get("salesOrders", "00000000-0000-0000-0000-000000000000")
    assert (caught.value.kind, caught.value.category, caught.value.status) == (K.DATA, C.NOT_FOUND, 404)


async def test_bad_filter_is_a_configuration_error(bc: BusinessCentralClient) -> None:
    with pytest.raises(ConnectorError) as caught:
        await bc.find_one("items", "number eq 'unterminated")
    assert (caught.value.kind, caught.value.category, caught.value.vendor_code) == (
        K.CONFIG,
        C.VALIDATION,
        "BadRequest_NotFound",
    )
    assert "Unterminated string literal at position 10" in caught.value.message


async def test_unknown_entity_set_is_a_configuration_error(bc: BusinessCentralClient) -> None:
    with pytest.raises(ConnectorError) as caught:
        await bc.find_one("salesQuotes", "number eq '1'")
    assert (caught.value.kind, caught.value.category, caught.value.vendor_code) == (
        K.CONFIG,
        C.NOT_FOUND,
        "BadRequest_ResourceNotFound",
    )


async def test_throttling_that_outlasts_the_retries_is_transient_rate_limit(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    sim.configure(rate_limit=1, rate_window_s=300)
    await bc.get_item_by_number("1000")
    with pytest.raises(ConnectorError) as caught:
        await bc.get_item_by_number("1000")
    # Retry-After (~300 s) is longer than the policy waits in-process; the error carries it instead
    assert (caught.value.kind, caught.value.category) == (K.TRANSIENT, C.RATE_LIMIT)
    assert caught.value.retry_after is not None and 290 <= caught.value.retry_after <= 300


async def test_server_errors_on_reads_retry_then_give_up_as_transient(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    sim.faults.set(FaultPlan(error_rate=1.0, error_status=503, paths=["/api/v2.0/"]))
    with pytest.raises(ConnectorError) as caught:
        await bc.get_item_by_number("1000")
    assert (caught.value.kind, caught.value.category) == (K.TRANSIENT, C.CONNECTION)
    assert sim.faults.injected["error"] == FAST_RETRY.max_attempts


async def test_server_error_on_create_is_not_retried(bc: BusinessCentralClient, sim: BusinessCentralSimulator) -> None:
    await bc.get_item_by_number("1000")  # token first
    sim.faults.set(FaultPlan(error_rate=1.0, error_status=500, paths=["/salesOrders"]))
    with pytest.raises(ConnectorError) as caught:
        await bc.create("salesOrders", order())
    assert (caught.value.kind, caught.value.category, caught.value.vendor_code) == (
        K.TRANSIENT,
        C.CONNECTION,
        "Internal_ServerError",
    )
    assert sim.faults.injected["error"] == 1


async def test_unreachable_server_is_a_connection_failure() -> None:
    client = BusinessCentralClient(
        f"http://127.0.0.1:{free_port()}", "t", "p", COMPANY, "app", "secret", retry=RetryPolicy(2, 0.001, 0.001)
    )
    async with client:
        with pytest.raises(ConnectorError) as caught:
            await client.get_item_by_number("1000")
    assert (caught.value.kind, caught.value.category, caught.value.status) == (K.TRANSIENT, C.CONNECTION, None)


@pytest.mark.parametrize(
    ("mode", "vendor_code", "kind", "category"),
    [
        ("malformed_json", "malformed_response", K.TRANSIENT, C.CONNECTION),
        ("missing_fields", "unexpected_response", K.TRANSIENT, C.CONNECTION),
        ("huge", "response_too_large", K.DATA, C.VALIDATION),
    ],
)
async def test_broken_responses_are_classified_not_crashes(
    bc: BusinessCentralClient,
    sim: BusinessCentralSimulator,
    mode: str,
    vendor_code: str,
    kind: FailureKind,
    category: FailureCategory,
) -> None:
    sim.corrupt_next(mode)
    with pytest.raises(ConnectorError) as caught:
        await bc.get_item_by_number("1000")
    assert (caught.value.vendor_code, caught.value.kind, caught.value.category) == (vendor_code, kind, category)


async def test_huge_request_payload_is_refused_as_data_error(
    bc: BusinessCentralClient, sim: BusinessCentralSimulator
) -> None:
    sim.configure(max_request_bytes=50_000)
    body = order()
    body["salesOrderLines"] = [{"lineObjectNumber": "1001", "quantity": 1, "description": "x" * 90}] * 600
    with pytest.raises(ConnectorError) as caught:
        await bc.create("salesOrders", body)
    assert (caught.value.kind, caught.value.category, caught.value.status) == (K.DATA, C.VALIDATION, 413)
    assert sim.records(COMPANY, "salesOrders") == []
