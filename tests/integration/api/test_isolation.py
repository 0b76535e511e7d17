"""Tenant isolation matrix: every endpoint × (platform, parent, own, sibling merchant, sibling partner).

Cross-scope ids answer 404 (never 403 with data, never 200); a missing permission answers 403 with no
data. The negative cases prove that nothing changed and no audit event was written.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from crossdock.bootstrap import Container
from crossdock.core.tenancy import Scope
from crossdock.governance.models import AuditEvent
from tests.factories import World

CALLERS = ["platform", "p1_admin", "m1a_admin", "m1b_admin", "p2_admin"]

# (method, path, body, expected status per caller in CALLERS order) for resources owned by merchant M1a
# (or, for the partner rows, by partner P1).
MATRIX = [
    ("GET", "/v1/merchants/{M1a}", None, [200, 200, 200, 404, 404]),
    ("PATCH", "/v1/merchants/{M1a}", {"settings": {"k": "v"}}, [200, 200, 200, 404, 404]),
    ("GET", "/v1/merchants/{M1a}/environments", None, [200, 200, 200, 404, 404]),
    ("GET", "/v1/users/{user:m1a_viewer}", None, [200, 200, 200, 404, 404]),
    ("PATCH", "/v1/users/{user:m1a_viewer}", {"name": "Renamed"}, [200, 200, 200, 404, 404]),
    ("GET", "/v1/service-accounts/{sa:M1a}", None, [200, 200, 200, 404, 404]),
    ("PATCH", "/v1/service-accounts/{sa:M1a}", {"description": "x"}, [200, 200, 200, 404, 404]),
    ("GET", "/v1/users/{user:p1_operator}", None, [200, 200, 404, 404, 404]),
    ("PATCH", "/v1/users/{user:p1_operator}", {"name": "Op"}, [200, 200, 404, 404, 404]),
    ("GET", "/v1/partners/{P1}", None, [200, 200, 403, 403, 404]),
    ("PATCH", "/v1/partners/{P1}", {"settings": {"brand": "x"}}, [200, 200, 403, 403, 404]),
    ("POST", "/v1/merchants", {"partner_id": "{P1}", "name": "New {caller}"}, [201, 201, 404, 404, 404]),
    (
        "POST",
        "/v1/users",
        {"merchant_id": "{M1a}", "email": "{caller}@new.test", "name": "N"},
        [201, 201, 201, 404, 404],
    ),
    ("POST", "/v1/service-accounts", {"merchant_id": "{M1a}", "name": "svc-{caller}"}, [201, 201, 201, 404, 404]),
    ("POST", "/v1/tokens", {"principal_id": "{user:m1a_viewer}"}, [201, 201, 201, 404, 404]),
]


def _fill(value: object, world: World, caller: str) -> object:
    if isinstance(value, str):
        out = value.replace("{caller}", caller)
        for key, ident in world.ids.items():
            out = out.replace("{" + key + "}", ident)
        return out
    if isinstance(value, dict):
        return {k: _fill(v, world, caller) for k, v in value.items()}
    return value


async def _audit_count(container: Container, actor_id: str) -> int:
    async with container.db.session(Scope.everything()) as s:
        return int(
            await s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.actor_id == actor_id)) or 0
        )


@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
async def test_isolation_matrix(
    client: httpx.AsyncClient,
    world: World,
    container: Container,
    method: str,
    path: str,
    body: dict | None,
    expected: list[int],
) -> None:
    # Denied callers go first so the "nothing changed" check sees the pristine row.
    order = sorted(range(len(CALLERS)), key=lambda i: expected[i] < 400)
    before = None
    if method != "POST":
        before = (await client.get(str(_fill(path, world, "platform")), headers=world.headers("platform"))).json()
    for i in order:
        caller = CALLERS[i]
        resp = await client.request(
            method, str(_fill(path, world, caller)), json=_fill(body, world, caller), headers=world.headers(caller)
        )
        assert resp.status_code == expected[i], (caller, resp.text)
        if resp.status_code >= 400:
            error = resp.json()["error"]
            assert error["code"] in ("not_found", "forbidden")
            assert set(resp.json()) == {"error"}  # no data leaks beside the error
            assert await _audit_count(container, world.ids[f"user:{caller}"]) == 0
            if before is not None:
                after = await client.get(str(_fill(path, world, "platform")), headers=world.headers("platform"))
                assert after.json() == before


async def test_lists_show_only_own_scope(client: httpx.AsyncClient, world: World) -> None:
    def names(resp: httpx.Response) -> set[str]:
        assert resp.status_code == 200, resp.text
        return {item["id"] for item in resp.json()["items"]}

    merchants = lambda who: client.get("/v1/merchants", headers=world.headers(who))  # noqa: E731
    assert names(await merchants("platform")) == {world.ids[m] for m in ("M1a", "M1b", "M2a")}
    assert names(await merchants("p1_admin")) == {world.ids["M1a"], world.ids["M1b"]}
    assert names(await merchants("p2_admin")) == {world.ids["M2a"]}
    assert names(await merchants("m1a_admin")) == {world.ids["M1a"]}

    users_m1b = names(await client.get("/v1/users", headers=world.headers("m1b_admin")))
    assert users_m1b == {world.ids["user:m1b_admin"]}
    sas_p2 = names(await client.get("/v1/service-accounts", headers=world.headers("p2_admin")))
    assert sas_p2 == set()
    audit_m1b = await client.get("/v1/audit-events", headers=world.headers("m1b_admin"))
    assert all(e["merchant_id"] == world.ids["M1b"] for e in audit_m1b.json()["items"])
    assert names(await client.get("/v1/partners", headers=world.headers("p1_admin"))) == {world.ids["P1"]}


async def test_viewer_cannot_write_and_nothing_changes(
    client: httpx.AsyncClient, world: World, container: Container
) -> None:
    resp = await client.patch(
        f"/v1/merchants/{world.ids['M1a']}", json={"name": "Hacked"}, headers=world.headers("m1a_viewer")
    )
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "forbidden"
    got = await client.get(f"/v1/merchants/{world.ids['M1a']}", headers=world.headers("m1a_viewer"))
    assert got.json()["name"] == "M1a"
    assert await _audit_count(container, world.ids["user:m1a_viewer"]) == 0


async def test_role_grants_cannot_escalate_or_cross_scope(client: httpx.AsyncClient, world: World) -> None:
    viewer = world.ids["user:m1a_viewer"]
    # A partner admin cannot grant platform_admin.
    resp = await client.post(
        "/v1/role-bindings", headers=world.headers("p1_admin"), json={"principal_id": viewer, "role": "platform_admin"}
    )
    assert resp.status_code == 403
    # A sibling merchant's admin cannot grant anything at M1a (the principal is invisible: 404).
    resp = await client.post(
        "/v1/role-bindings",
        headers=world.headers("m1b_admin"),
        json={"principal_id": viewer, "role": "merchant_admin", "merchant_id": world.ids["M1a"]},
    )
    assert resp.status_code == 404
    # The merchant's own admin can, exactly once.
    body = {"principal_id": viewer, "role": "merchant_approver", "merchant_id": world.ids["M1a"]}
    first = await client.post("/v1/role-bindings", headers=world.headers("m1a_admin"), json=body)
    assert first.status_code == 201, first.text
    again = await client.post("/v1/role-bindings", headers=world.headers("m1a_admin"), json=body)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    # And the sibling cannot read or delete it.
    rb = first.json()["id"]
    assert (await client.get(f"/v1/role-bindings/{rb}", headers=world.headers("m1b_admin"))).status_code == 404
    assert (await client.delete(f"/v1/role-bindings/{rb}", headers=world.headers("m1b_admin"))).status_code == 404
    assert (await client.get(f"/v1/role-bindings/{rb}", headers=world.headers("m1a_admin"))).status_code == 200
