"""The cases API: list filters, detail, every action audited, bulk by filter, routing rules, tenant isolation
and bad input. Negative cases assert that nothing changed and nothing was audited."""

from __future__ import annotations

from typing import Any

import httpx

from crossdock.bootstrap import Container
from tests.factories import World

from .conftest import all_cases, audit_actions, failure, open_case


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


async def test_list_filters_and_detail(container: Container, api: httpx.AsyncClient, world: World) -> None:
    sku = await open_case(container, failure(world, "M1a", cause="SKU X-1"))
    credit = await open_case(container, failure(world, "M1a", category="credit_hold", cause="C-9"))
    other = await open_case(container, failure(world, "M1b", cause="SKU X-1"))
    h = world.headers("p1_admin")

    everything = (await api.get("/v1/cases", headers=h)).json()
    by_category = (await api.get("/v1/cases", params={"category": "credit_hold"}, headers=h)).json()
    by_merchant = (await api.get("/v1/cases", params={"merchant_id": world.ids["M1b"]}, headers=h)).json()
    by_team = (await api.get("/v1/cases", params={"team": "catalog", "severity": "medium"}, headers=h)).json()
    young = (await api.get("/v1/cases", params={"max_age_minutes": 5, "sla_state": "ok"}, headers=h)).json()
    old = (await api.get("/v1/cases", params={"min_age_minutes": 5}, headers=h)).json()
    paged = (await api.get("/v1/cases", params={"limit": 2}, headers=h)).json()

    assert ids(everything) == [sku.id, credit.id, other.id]
    assert ids(by_category) == [credit.id]
    assert ids(by_merchant) == [other.id]
    assert ids(by_team) == [sku.id, other.id]
    assert ids(young) == [sku.id, credit.id, other.id]
    assert ids(old) == []
    assert ids(paged) == [sku.id, credit.id] and paged["next_cursor"]

    detail = (await api.get(f"/v1/cases/{sku.id}", headers=h)).json()
    assert (detail["category"], detail["team"], detail["payload"]) == ("sku_not_found", "catalog", {"sku": "SKU X-1"})
    assert [r["run_id"] for r in detail["runs"]] == [sku.run_id]
    assert [e["kind"] for e in detail["timeline"]] == ["open"]


async def test_every_action_is_audited_and_on_the_timeline(
    container: Container, api: httpx.AsyncClient, world: World
) -> None:
    case = await open_case(container, failure(world, "M1a"))
    h = world.headers("m1a_admin")
    url = f"/v1/cases/{case.id}"

    assigned = await api.post(f"{url}/assign", json={"assignee": "ana@aurora.test"}, headers=h)
    commented = await api.post(f"{url}/comment", json={"text": "Looking at the SKU map"}, headers=h)
    started = await api.post(f"{url}/start", headers=h)
    resolved = await api.post(f"{url}/resolve", json={"reason": "SKU mapped"}, headers=h)

    assert [r.status_code for r in (assigned, commented, started, resolved)] == [200, 200, 200, 200]
    assert (assigned.json()["assignee"], started.json()["state"]) == ("ana@aurora.test", "in_progress")
    assert (resolved.json()["state"], resolved.json()["resolution"]) == ("resolved", "SKU mapped")
    assert resolved.json()["resolved_by"] == world.ids["user:m1a_admin"]
    assert await audit_actions(container, case.id) == [
        "cases.case.open",
        "cases.case.assign",
        "cases.case.comment",
        "cases.case.start",
        "cases.case.resolve",
    ]
    timeline = (await api.get(url, headers=h)).json()["timeline"]
    assert [(e["kind"], e["text"]) for e in timeline] == [
        ("open", None),
        ("assign", None),
        ("comment", "Looking at the SKU map"),
        ("start", None),
        ("resolve", "SKU mapped"),
    ]
    assert timeline[1]["data"] == {"before": {"assignee": None}, "after": {"assignee": "ana@aurora.test"}}


async def test_ignore_needs_a_reason_and_closed_cases_refuse_actions(
    container: Container, api: httpx.AsyncClient, world: World
) -> None:
    case = await open_case(container, failure(world, "M1a"))
    h = world.headers("m1a_admin")
    url = f"/v1/cases/{case.id}"

    no_reason = await api.post(f"{url}/ignore", json={}, headers=h)
    blank = await api.post(f"{url}/ignore", json={"reason": "   "}, headers=h)
    unknown_field = await api.post(f"{url}/assign", json={"assignee": "x", "priority": 1}, headers=h)
    assert [r.status_code for r in (no_reason, blank, unknown_field)] == [422, 422, 422]
    assert no_reason.json()["error"]["code"] == "validation_error"
    assert await audit_actions(container, case.id) == ["cases.case.open"]

    ignored = await api.post(f"{url}/ignore", json={"reason": "test order"}, headers=h)
    again = await api.post(f"{url}/resolve", json={"reason": "x"}, headers=h)
    retry = await api.post(f"{url}/retry", headers=h)

    assert (ignored.status_code, ignored.json()["state"]) == (200, "ignored")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "invalid_state")
    assert retry.status_code == 409
    assert await audit_actions(container, case.id) == ["cases.case.open", "cases.case.ignore"]


async def test_bad_query_parameters_are_422(api: httpx.AsyncClient, world: World) -> None:
    h = world.headers("p1_admin")
    for params in ({"severity": "urgent"}, {"state": "closed"}, {"min_age_minutes": -1}, {"limit": 0}):
        resp = await api.get("/v1/cases", params=params, headers=h)
        assert (resp.status_code, resp.json()["error"]["code"]) == (422, "validation_error"), params
    bad_cursor = await api.get("/v1/cases", params={"cursor": "nope"}, headers=h)
    assert bad_cursor.status_code == 400


async def test_bulk_applies_to_matching_visible_cases_only(
    container: Container, api: httpx.AsyncClient, world: World
) -> None:
    sku1 = await open_case(container, failure(world, "M1a", cause="SKU A"))
    sku2 = await open_case(container, failure(world, "M1a", cause="SKU B"))
    credit = await open_case(container, failure(world, "M1a", category="credit_hold", cause="C"))
    sibling = await open_case(container, failure(world, "M1b", cause="SKU A"))
    foreign = await open_case(container, failure(world, "M2a", cause="SKU A"))

    resp = await api.post(
        "/v1/cases/bulk",
        json={"filter": {"category": "sku_not_found"}, "action": "ignore", "reason": "discontinued SKUs"},
        headers=world.headers("m1a_admin"),
    )

    assert resp.status_code == 200
    assert resp.json() == {
        "matched": 2,
        "applied": 2,
        "skipped": 0,
        "case_ids": [sku1.id, sku2.id],
        "problems": [],
    }
    states = {c.id: c.state for c in await all_cases(container)}
    assert states == {sku1.id: "ignored", sku2.id: "ignored", credit.id: "open", sibling.id: "open", foreign.id: "open"}
    assert (await audit_actions(container)).count("cases.case.ignore") == 2

    again = await api.post(
        "/v1/cases/bulk",
        json={"filter": {"merchant_id": world.ids["M1a"]}, "action": "assign", "assignee": "ops@aurora.test"},
        headers=world.headers("p1_admin"),
    )
    assert (again.json()["applied"], again.json()["skipped"], again.json()["case_ids"]) == (1, 2, [credit.id])
    assert {p["case_id"] for p in again.json()["problems"]} == {sku1.id, sku2.id}


async def test_bulk_refuses_an_empty_filter_or_missing_argument(
    container: Container, api: httpx.AsyncClient, world: World
) -> None:
    await open_case(container, failure(world, "M1a"))
    h = world.headers("p1_admin")

    empty = await api.post("/v1/cases/bulk", json={"filter": {}, "action": "ignore", "reason": "x"}, headers=h)
    no_reason = await api.post("/v1/cases/bulk", json={"filter": {"state": "open"}, "action": "resolve"}, headers=h)
    replay = await api.post("/v1/cases/bulk", json={"filter": {"state": "open"}, "action": "replay"}, headers=h)

    assert [r.status_code for r in (empty, no_reason, replay)] == [422, 422, 422]
    assert [c.state for c in await all_cases(container)] == ["open"]
    assert await audit_actions(container) == ["cases.case.open"]


async def test_tenant_isolation(container: Container, api: httpx.AsyncClient, world: World) -> None:
    case = await open_case(container, failure(world, "M1a"))
    url = f"/v1/cases/{case.id}"

    for caller in ("m1b_admin", "p2_admin"):
        h = world.headers(caller)
        assert (await api.get(url, headers=h)).status_code == 404
        assert (await api.post(f"{url}/assign", json={"assignee": "x"}, headers=h)).status_code == 404
        assert (await api.post(f"{url}/ignore", json={"reason": "mine now"}, headers=h)).status_code == 404
        assert (await api.get("/v1/cases", headers=h)).json()["items"] == []
    viewer = world.headers("m1a_viewer")
    assert (await api.get(url, headers=viewer)).status_code == 200
    assert (await api.post(f"{url}/start", headers=viewer)).status_code == 403

    [after] = await all_cases(container)
    assert (after.state, after.assignee) == ("open", None)
    assert await audit_actions(container) == ["cases.case.open"]


async def test_routing_rules_crud_and_scope(container: Container, api: httpx.AsyncClient, world: World) -> None:
    body = {"name": "sku to catalog-eu", "partner_id": world.ids["P1"], "match_category": "sku_not_found"}
    created = await api.post(
        "/v1/routing-rules", json={**body, "team": "catalog-eu"}, headers=world.headers("p1_admin")
    )
    assert created.status_code == 201
    rule = created.json()
    assert (rule["partner_id"], rule["merchant_id"], rule["priority"]) == (world.ids["P1"], None, 100)

    by_merchant = await api.post("/v1/routing-rules", json={**body, "team": "x"}, headers=world.headers("m1a_admin"))
    both = await api.post(
        "/v1/routing-rules",
        json={**body, "merchant_id": world.ids["M1a"], "team": "x"},
        headers=world.headers("p1_admin"),
    )
    bad_sla = await api.post(
        "/v1/routing-rules", json={**body, "team": "x", "sla_minutes": 0}, headers=world.headers("p1_admin")
    )
    assert [r.status_code for r in (by_merchant, both, bad_sla)] == [404, 422, 422]

    url = f"/v1/routing-rules/{rule['id']}"
    assert (await api.get(url, headers=world.headers("p2_admin"))).status_code == 404
    patched = await api.patch(url, json={"priority": 5, "severity": "high"}, headers=world.headers("p1_admin"))
    assert (patched.status_code, patched.json()["priority"], patched.json()["severity"]) == (200, 5, "high")

    case = await open_case(container, failure(world, "M1b"))
    assert (case.team, case.severity, case.rule_id) == ("catalog-eu", "high", rule["id"])

    assert (await api.delete(url, headers=world.headers("p2_admin"))).status_code == 404
    assert (await api.delete(url, headers=world.headers("p1_admin"))).status_code == 204
    assert (await api.get(url, headers=world.headers("p1_admin"))).status_code == 404
