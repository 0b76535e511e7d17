"""`connection test` probes each system's simulator over real HTTP: good credentials pass, bad ones
get a diagnosis naming the failed check."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from crossdock.connectors.sandbox.serve import BackgroundServer, serve_in_thread
from crossdock.connectors.sandbox.server import Sandbox, create_sandbox_app
from crossdock.connectors.sandbox.shipstation_state import DEFAULT_API_KEY, DEFAULT_API_SECRET
from crossdock.connectors.sandbox.shopify_state import DEFAULT_SHOP, DEFAULT_TOKEN
from tests.factories import World

COMPANY = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[BackgroundServer]:
    sandbox = Sandbox()
    sandbox.businesscentral.add_client("crossdock-app", "bc-secret")
    sandbox.businesscentral.add_company("CRONUS USA", COMPANY)
    sandbox.netsuite.add_account(
        "1234567_SB1", consumer_key="ck", consumer_secret="cs", token_id="ti", token_secret="ts"
    )
    with serve_in_thread(create_sandbox_app(sandbox)) as server:
        yield server


def connections(url: str) -> dict[str, dict]:
    return {
        "shopify": {
            "config": {"shop_domain": DEFAULT_SHOP, "base_url": f"{url}/shopify"},
            "secrets": {"access_token": DEFAULT_TOKEN, "webhook_secrets": ["w"]},
            "bad": {"access_token": "shpat_wrong", "webhook_secrets": ["w"]},
        },
        "businesscentral": {
            "config": {
                "tenant": "t1",
                "environment": "sandbox",
                "company_id": COMPANY,
                "base_url": f"{url}/businesscentral",
            },
            "secrets": {"client_id": "crossdock-app", "client_secret": "bc-secret"},
            "bad": {"client_id": "crossdock-app", "client_secret": "nope"},
        },
        "netsuite": {
            "config": {"account_id": "1234567_SB1", "base_url": f"{url}/netsuite"},
            "secrets": {"consumer_key": "ck", "consumer_secret": "cs", "token_id": "ti", "token_secret": "ts"},
            "bad": {"consumer_key": "ck", "consumer_secret": "cs", "token_id": "ti", "token_secret": "forged"},
        },
        "shipstation": {
            "config": {"base_url": f"{url}/shipstation"},
            "secrets": {
                "api_key": DEFAULT_API_KEY,
                "api_secret": DEFAULT_API_SECRET,
                "webhook_token": "0123456789abcdef",
            },
            "bad": {"api_key": DEFAULT_API_KEY, "api_secret": "wrong", "webhook_token": "0123456789abcdef"},
        },
    }


@pytest.mark.parametrize("system", ["shopify", "businesscentral", "netsuite", "shipstation"])
async def test_probe_passes_with_good_credentials_and_diagnoses_bad_ones(
    client: httpx.AsyncClient, world: World, sandbox_server: BackgroundServer, system: str
) -> None:
    spec = connections(sandbox_server.url)[system]
    results = {}
    for label, secrets in (("good", spec["secrets"]), ("bad", spec["bad"])):
        created = await client.post(
            "/v1/connections",
            headers=world.headers("m1a_admin"),
            json={
                "merchant_id": world.ids["M1a"],
                "system": system,
                "name": f"{system}-{label}",
                "config": spec["config"],
                "secrets": secrets,
            },
        )
        assert created.status_code == 201, created.text
        tested = await client.post(f"/v1/connections/{created.json()['id']}/test", headers=world.headers("m1a_admin"))
        assert tested.status_code == 200
        results[label] = tested.json()
    assert results["good"]["ok"] is True, results["good"]
    assert results["good"]["summary"].endswith("reachable and authenticated.")
    assert results["bad"]["ok"] is False
    check = results["bad"]["checks"][0]
    assert check["ok"] is False and check["kind"] == "auth" and check["category"] == "auth"
    assert "credentials" in check["detail"]
