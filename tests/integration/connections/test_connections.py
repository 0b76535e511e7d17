"""Connections: secrets encrypted at rest, write-only over the API, rotatable, tenant-scoped."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.connections import service
from crossdock.connections.models import Connection
from crossdock.core.context import Actor
from crossdock.core.errors import CrossdockError
from crossdock.core.secrets import SecretBox, generate_key
from crossdock.core.tenancy import Scope
from crossdock.governance.models import AuditEvent
from tests.factories import World

SHOP = {
    "system": "shopify",
    "name": "aurora-shop",
    "config": {"shop_domain": "aurora.myshopify.com"},
    "secrets": {"access_token": "shpat_supersecret_123", "webhook_secrets": ["whsec_abc"]},
}


async def _create(client: httpx.AsyncClient, world: World, caller: str = "m1a_admin") -> httpx.Response:
    return await client.post(
        "/v1/connections", json={**SHOP, "merchant_id": world.ids["M1a"]}, headers=world.headers(caller)
    )


async def test_secrets_are_encrypted_and_never_returned(
    client: httpx.AsyncClient, world: World, container: Container
) -> None:
    resp = await _create(client, world)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert "secrets" not in body and "secrets_ciphertext" not in body
    assert body["secret_fields"] == ["access_token", "webhook_secrets"]
    assert body["config"]["api_version"] == "2025-07"
    async with container.db.session(Scope.everything()) as s:
        row = await s.scalar(select(Connection).where(Connection.id == body["id"]))
        assert row is not None
        assert "shpat_supersecret_123" not in row.secrets_ciphertext
        assert container.secrets.decrypt(row.secrets_ciphertext)["access_token"] == "shpat_supersecret_123"
        audit = (await s.scalars(select(AuditEvent).where(AuditEvent.target_id == body["id"]))).all()
    assert [a.action for a in audit] == ["connections.connection.create"]
    assert "shpat_supersecret_123" not in str(audit[0].after)
    listed = (await client.get("/v1/connections", headers=world.headers("m1a_viewer"))).json()
    assert [c["id"] for c in listed["items"]] == [body["id"]]
    assert "shpat" not in str(listed)


async def test_invalid_config_names_the_field_and_never_echoes_secrets(client: httpx.AsyncClient, world: World) -> None:
    bad = {**SHOP, "merchant_id": world.ids["M1a"], "config": {"shop_domain": "not a domain"}}
    resp = await client.post("/v1/connections", json=bad, headers=world.headers("m1a_admin"))
    assert resp.status_code == 422
    assert resp.json()["error"]["details"]["errors"][0]["path"] == "config.shop_domain"
    bad = {**SHOP, "merchant_id": world.ids["M1a"], "secrets": {"access_token": "tok-visible?", "extra": "x"}}
    resp = await client.post("/v1/connections", json=bad, headers=world.headers("m1a_admin"))
    assert resp.status_code == 422
    assert "tok-visible?" not in resp.text
    assert {e["path"] for e in resp.json()["error"]["details"]["errors"]} == {
        "secrets.webhook_secrets",
        "secrets.extra",
    }
    unknown = {**SHOP, "merchant_id": world.ids["M1a"], "system": "sap"}
    resp = await client.post("/v1/connections", json=unknown, headers=world.headers("m1a_admin"))
    assert resp.status_code == 422 and "Unknown system 'sap'" in resp.json()["error"]["message"]


async def test_connections_are_tenant_scoped(client: httpx.AsyncClient, world: World) -> None:
    conn_id = (await _create(client, world)).json()["id"]
    assert (await client.get(f"/v1/connections/{conn_id}", headers=world.headers("m1b_admin"))).status_code == 404
    patch = await client.patch(
        f"/v1/connections/{conn_id}", json={"status": "disabled"}, headers=world.headers("p2_admin")
    )
    assert patch.status_code == 404
    assert (await client.get(f"/v1/connections/{conn_id}", headers=world.headers("p1_admin"))).json()["status"] == (
        "active"
    )
    dup = await _create(client, world, "p1_admin")
    assert dup.status_code == 409


async def test_update_secrets_and_test_without_probe(
    client: httpx.AsyncClient, world: World, container: Container
) -> None:
    body = {
        "merchant_id": world.ids["M1a"],
        "system": "chat",
        "name": "ops-chat",
        "config": {"flavor": "slack"},
        "secrets": {"webhook_url": "https://hooks.example/T1"},
    }
    conn = (await client.post("/v1/connections", json=body, headers=world.headers("m1a_admin"))).json()
    resp = await client.patch(
        f"/v1/connections/{conn['id']}",
        json={"secrets": {"webhook_url": "https://h/T2"}},
        headers=world.headers("m1a_admin"),
    )
    assert resp.status_code == 200
    async with container.db.session(Scope.everything()) as s:
        row = await service.get_connection(s, conn["id"])
        assert container.secrets.decrypt(row.secrets_ciphertext) == {"webhook_url": "https://h/T2"}
    tested = await client.post(f"/v1/connections/{conn['id']}/test", headers=world.headers("m1a_admin"))
    assert tested.status_code == 200 and tested.json()["ok"] is True
    assert (await client.get(f"/v1/connections/{conn['id']}", headers=world.headers("m1a_admin"))).json()["last_test"][
        "ok"
    ] is True


async def test_key_rotation_keeps_every_secret_readable(
    client: httpx.AsyncClient, world: World, container: Container
) -> None:
    conn_id = (await _create(client, world)).json()["id"]
    old_key = container.settings.master_key_file.read_text().strip()  # type: ignore[union-attr]
    new_key = generate_key()
    both = SecretBox([new_key, old_key])
    async with container.db.session(Scope.everything()) as s:
        assert await service.rotate_keys(s, Actor.system(), both) == 1
    async with container.db.session(Scope.everything()) as s:
        row = await service.get_connection(s, conn_id)
        assert SecretBox([new_key]).decrypt(row.secrets_ciphertext)["access_token"] == "shpat_supersecret_123"
        with pytest.raises(CrossdockError) as err:
            SecretBox([old_key]).decrypt(row.secrets_ciphertext)
        assert err.value.code == "configuration_error"


def test_bad_master_key_is_a_clear_configuration_error() -> None:
    with pytest.raises(CrossdockError) as err:
        SecretBox(["not-a-key"])
    assert "not a valid Fernet key" in err.value.message
