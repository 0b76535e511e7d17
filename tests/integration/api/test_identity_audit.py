"""Tokens, pagination and the audit trail through the API."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.core.tenancy import UNSCOPED, Scope
from crossdock.governance.models import AuditEvent
from crossdock.identity.models import ApiToken
from tests.factories import World


async def test_token_is_shown_once_and_stored_hashed(
    client: httpx.AsyncClient, world: World, container: Container
) -> None:
    resp = await client.post(
        "/v1/tokens",
        json={"principal_id": world.ids["user:m1a_viewer"], "name": "ci", "expires_in_days": 7},
        headers=world.headers("m1a_admin"),
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    secret = created["token"]
    assert secret.startswith("cdk_") and len(secret) > 40
    listed = await client.get(f"/v1/tokens/{created['id']}", headers=world.headers("m1a_admin"))
    assert "token" not in listed.json()
    async with container.db.session(Scope.everything()) as s:
        row = await s.scalar(select(ApiToken).where(ApiToken.id == created["id"]).execution_options(**{UNSCOPED: True}))
        assert row is not None and secret not in (row.token_hash, row.prefix)
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.json()["principal_id"] == world.ids["user:m1a_viewer"]
    assert [g["role"] for g in me.json()["grants"]] == ["merchant_viewer"]


async def test_pagination_walks_every_row_once(client: httpx.AsyncClient, world: World) -> None:
    for i in range(57):
        r = await client.post(
            "/v1/users",
            json={"merchant_id": world.ids["M1b"], "email": f"u{i}@page.test", "name": f"U{i}"},
            headers=world.headers("m1b_admin"),
        )
        assert r.status_code == 201
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 25, "merchant_id": world.ids["M1b"], **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/users", params=params, headers=world.headers("m1b_admin"))).json()
        seen += [u["id"] for u in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert len(seen) == 58 == len(set(seen))  # 57 new users plus the merchant's admin
    assert seen == sorted(seen)


async def test_every_change_is_audited_with_actor_and_request_id(
    client: httpx.AsyncClient, world: World, container: Container
) -> None:
    resp = await client.patch(
        f"/v1/merchants/{world.ids['M1a']}",
        json={"name": "Aurora 2"},
        headers={**world.headers("p1_admin"), "X-Request-Id": "req-abc-123"},
    )
    assert resp.status_code == 200
    assert resp.headers["x-request-id"] == "req-abc-123"
    events = (
        await client.get(
            "/v1/audit-events",
            params={"target_id": world.ids["M1a"], "action": "tenants.merchant.update"},
            headers=world.headers("m1a_admin"),
        )
    ).json()["items"]
    assert len(events) == 1
    ev = events[0]
    assert ev["actor_id"] == world.ids["user:p1_admin"]
    assert ev["request_id"] == "req-abc-123"
    assert ev["before"]["name"] == "M1a" and ev["after"]["name"] == "Aurora 2"
    assert ev["partner_id"] == world.ids["P1"] and ev["merchant_id"] == world.ids["M1a"]


async def test_failed_change_leaves_no_audit_event(
    client: httpx.AsyncClient, world: World, container: Container
) -> None:
    body = {"partner_id": world.ids["P1"], "name": "Dup", "slug": "dup"}
    assert (await client.post("/v1/merchants", json=body, headers=world.headers("p1_admin"))).status_code == 201
    resp = await client.post("/v1/merchants", json=body, headers=world.headers("p1_admin"))
    assert resp.status_code == 409
    async with container.db.session(Scope.everything()) as s:
        creates = (
            await s.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "tenants.merchant.create", AuditEvent.actor_id == world.ids["user:p1_admin"]
                )
            )
        ).all()
    assert len(creates) == 1


async def test_health_ready_metrics_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    await client.get("/v1/merchants")
    metrics = (await client.get("/metrics")).text
    assert 'crossdock_http_requests_total{method="GET",route="/v1/merchants",status="401"}' in metrics
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/role-bindings" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200
