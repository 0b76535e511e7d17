"""Bad input gets a clear 4xx in the one error shape, and changes nothing."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update

from crossdock.bootstrap import Container
from crossdock.core.clock import utcnow
from crossdock.core.tenancy import UNSCOPED, Scope
from crossdock.identity.models import ApiToken
from crossdock.identity.tokens import hash_token
from tests.factories import World


def assert_error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


async def test_malformed_json(client: httpx.AsyncClient, world: World) -> None:
    resp = await client.post(
        "/v1/merchants",
        content=b'{"partner_id": "x", "name": ',
        headers={**world.headers("p1_admin"), "content-type": "application/json"},
    )
    err = assert_error(resp, 400, "malformed_json")
    assert "not valid JSON" in err["message"]


async def test_wrong_types_and_unknown_fields_name_the_path(client: httpx.AsyncClient, world: World) -> None:
    resp = await client.post(
        "/v1/merchants", json={"partner_id": world.ids["P1"], "name": 42}, headers=world.headers("p1_admin")
    )
    err = assert_error(resp, 422, "validation_error")
    assert [e["path"] for e in err["details"]["errors"]] == ["name"]
    resp = await client.post(
        "/v1/merchants",
        json={"partner_id": world.ids["P1"], "name": "A", "seats": 5},
        headers=world.headers("p1_admin"),
    )
    err = assert_error(resp, 422, "validation_error")
    assert err["details"]["errors"][0]["path"] == "seats"
    assert err["details"]["errors"][0]["type"] == "extra_forbidden"
    listed = await client.get(
        "/v1/merchants", params={"partner_id": world.ids["P1"]}, headers=world.headers("p1_admin")
    )
    assert {m["name"] for m in listed.json()["items"]} == {"M1a", "M1b"}


async def test_bad_query_parameters(client: httpx.AsyncClient, world: World) -> None:
    assert_error(
        await client.get("/v1/users", params={"limit": 0}, headers=world.headers("platform")), 422, "validation_error"
    )
    assert_error(
        await client.get("/v1/users", params={"cursor": "%%%"}, headers=world.headers("platform")), 400, "bad_request"
    )


async def test_oversized_body_is_rejected(client: httpx.AsyncClient, world: World, container: Container) -> None:
    limit = container.settings.api.max_body_bytes
    big = b'{"name": "' + b"x" * (limit + 10) + b'"}'
    resp = await client.post(
        "/v1/partners", content=big, headers={**world.headers("platform"), "content-type": "application/json"}
    )
    err = assert_error(resp, 413, "payload_too_large")
    assert err["details"]["limit_bytes"] == limit


async def test_missing_invalid_expired_and_revoked_tokens(
    client: httpx.AsyncClient, world: World, container: Container
) -> None:
    assert_error(await client.get("/v1/merchants"), 401, "unauthenticated")
    assert_error(
        await client.get("/v1/merchants", headers={"Authorization": "Bearer cdk_nope"}), 401, "unauthenticated"
    )
    assert_error(await client.get("/v1/merchants", headers={"Authorization": "Basic abc"}), 401, "unauthenticated")

    async with container.db.session(Scope.everything()) as s:
        await s.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(world.tokens["m1a_viewer"]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
            .execution_options(**{UNSCOPED: True})
        )
    err = assert_error(await client.get("/v1/merchants", headers=world.headers("m1a_viewer")), 401, "token_expired")
    assert "expired" in err["message"]

    me = await client.get("/v1/me", headers=world.headers("m1a_admin"))
    assert me.status_code == 200
    tokens = await client.get(
        "/v1/tokens", params={"principal_id": world.ids["user:m1a_admin"]}, headers=world.headers("m1a_admin")
    )
    token_id = tokens.json()["items"][0]["id"]
    assert (await client.delete(f"/v1/tokens/{token_id}", headers=world.headers("p1_admin"))).status_code == 200
    assert_error(await client.get("/v1/me", headers=world.headers("m1a_admin")), 401, "unauthenticated")


async def test_unknown_route_and_method(client: httpx.AsyncClient, world: World) -> None:
    assert_error(await client.get("/v1/nothing-here", headers=world.headers("platform")), 404, "not_found")
    assert_error(await client.put("/v1/merchants", headers=world.headers("platform")), 405, "bad_request")
