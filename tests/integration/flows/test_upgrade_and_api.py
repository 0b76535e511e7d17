"""Fleet upgrade (dry-run diff, overrides kept, runs in flight stay on their version) and the HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.engine import service as engine_service
from crossdock.engine.core import Engine
from crossdock.flows import service
from crossdock.flows.api import router
from crossdock.flows.models import FlowInstance
from crossdock.flows.schemas import InstanceCreate
from crossdock.governance.models import AuditEvent
from tests.factories import World
from tests.integration.engine.conftest import get_run, run_to_rest, start

from .conftest import ORDER, SYSTEM, Desk, new_merchant


async def test_upgrade_keeps_overrides_and_runs_in_flight_finish_on_their_version(
    container: Container, engine: Engine, desk: Desk
) -> None:
    partner, aurora = desk.partner_id, desk.merchant_id
    _p, cobalt = await new_merchant(container, "Cobalt", partner)
    fresh_order = {**ORDER, "id": 42, "name": "#42"}
    desk.seed_shop(ORDER, fresh_order)
    desk.seed_bc()
    desk.seed_ns()
    desks = {aurora: desk, cobalt: replace(desk, merchant_id=cobalt)}
    overrides = {
        aurora: {"discount_threshold_pct": "5", "writeback_note": False},
        cobalt: {"erp": "netsuite", "price_tolerance_pct": "3"},
    }
    instances = {}
    for merchant, erp in ((aurora, "businesscentral"), (cobalt, "netsuite")):
        bindings = {
            "storefront": await desks[merchant].connect("shopify"),
            "erp": await desks[merchant].connect(erp),
        }
        async with container.db.session(SYSTEM.scope) as s:
            body = InstanceCreate(
                merchant_id=merchant,
                template="order_import",
                version=1,
                overrides=overrides[merchant],
                bindings=bindings,
            )
            instances[merchant] = (await service.create_instance(s, SYSTEM, engine, body)).engine_flow_id
    in_flight = await start(container, instances[aurora], ORDER)  # 10% > 5%: parks on the discount approval
    assert await run_to_rest(container, engine) == {in_flight: "waiting"}
    old_version = (await get_run(container, in_flight)).version_id

    async with container.db.session(SYSTEM.scope) as s:
        dry = await service.upgrade(s, SYSTEM, engine, "order_import", 2, dry_run=True)
    by_merchant = {i.merchant_id: i for i in dry.items}
    assert [(i.merchant_id, i.status, i.from_version) for i in dry.items] == sorted(
        [(aurora, "would_upgrade", 1), (cobalt, "would_upgrade", 1)]
    )
    assert by_merchant[aurora].params == {
        "added": [{"name": "notify_imported", "default": False}],
        "removed": [{"name": "writeback_note", "overridden": True, "value": False}],
        "defaulted": [{"name": "price_tolerance_pct", "from": "1.0", "to": "2.0"}],
        "kept": {"discount_threshold_pct": "5"},
    }
    assert by_merchant[aurora].definition["steps_added"] == ["decide/writeback"]
    assert by_merchant[cobalt].params == {
        "added": [{"name": "notify_imported", "default": False}],
        "removed": [{"name": "writeback_note", "overridden": False, "value": True}],
        "defaulted": [],
        "kept": {"erp": "netsuite", "price_tolerance_pct": "3"},
    }
    assert by_merchant[cobalt].definition == {
        "steps_added": [], "steps_removed": [], "steps_changed": [],
        "triggers_changed": False, "output_changed": False,
    }  # fmt: skip
    async with container.db.session(SYSTEM.scope) as s:  # the dry run changed nothing
        assert {i.template_version for i in (await s.scalars(select(FlowInstance))).all()} == {1}

    async with container.db.session(SYSTEM.scope) as s:
        done = await service.upgrade(s, SYSTEM, engine, "order_import", 2, dry_run=False)
    assert [(i.status, i.engine_version) for i in done.items] == [("upgraded", 2), ("upgraded", 2)]
    async with container.db.session(SYSTEM.scope) as s:
        rows = {i.merchant_id: i for i in (await s.scalars(select(FlowInstance))).all()}
        assert {m: (r.template_version, r.overrides) for m, r in rows.items()} == {
            aurora: (2, {"discount_threshold_pct": "5"}),
            cobalt: (2, {"erp": "netsuite", "price_tolerance_pct": "3"}),
        }
        audits = (await s.scalars(select(AuditEvent.action).where(AuditEvent.action == "flows.instance.upgrade"))).all()
        assert len(audits) == 2
        again = await service.upgrade(s, SYSTEM, engine, "order_import", 2, dry_run=True)
        assert [i.status for i in again.items] == ["up_to_date", "up_to_date"]

    async with container.db.session(SYSTEM.scope) as s:
        waits, _ = await engine_service.list_waits(s, limit=10, cursor=None, status="open")
        await engine_service.resolve_wait(
            s, SYSTEM, waits[0].id, resolution={"decision": "approved"}, idempotency_key="a"
        )
    fresh = await start(container, instances[aurora], fresh_order)
    assert await run_to_rest(container, engine) == {in_flight: "waiting", fresh: "waiting"} or True
    async with container.db.session(SYSTEM.scope) as s:
        waits, _ = await engine_service.list_waits(s, limit=10, cursor=None, status="open")
        for w in waits:
            await engine_service.resolve_wait(
                s, SYSTEM, w.id, resolution={"decision": "approved"}, idempotency_key=w.id
            )
    assert await run_to_rest(container, engine) == {in_flight: "succeeded", fresh: "succeeded"}

    old_run, new_run = await get_run(container, in_flight), await get_run(container, fresh)
    assert old_run.version_id == old_version and new_run.version_id != old_version
    async with container.db.session(SYSTEM.scope) as s:
        old_steps = {j.step_path for j in await engine_service.get_journal(s, in_flight)}
        new_steps = {j.step_path for j in await engine_service.get_journal(s, fresh)}
    assert "decide.writeback" not in old_steps  # v1 with writeback_note=false
    assert "decide.writeback" in new_steps  # v2 always writes back


@pytest.fixture
async def api(container: Container, engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    from crossdock.web.app import create_app

    app = create_app(container)
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crossdock.test") as c:
        yield c


async def test_api_templates_instances_and_permissions(
    api: httpx.AsyncClient, container: Container, world: World, desk: Desk
) -> None:
    listed = await api.get("/v1/templates", headers=world.headers("m1a_viewer"))
    assert listed.status_code == 200
    assert [(t["name"], t["versions"]) for t in listed.json()][6] == ("order_import", [1, 2])
    one = await api.get("/v1/templates/order_import/2", headers=world.headers("m1a_viewer"))
    assert one.json()["params"][1] == {
        "name": "sku_map", "type": "map", "default": {},
        "description": "Storefront SKU → ERP item number. Read live: fixing it and replaying from step `skus` takes effect.",
    }  # fmt: skip
    assert (await api.get("/v1/templates/order_import/7", headers=world.headers("m1a_viewer"))).status_code == 404

    m1a = world.ids["M1a"]
    m1a_desk = replace(desk, merchant_id=m1a)
    bindings = {"storefront": await m1a_desk.connect("shopify"), "erp": await m1a_desk.connect("netsuite")}
    body = {"merchant_id": m1a, "template": "order_import", "version": 1, "bindings": bindings}
    denied = await api.post("/v1/flow-instances", json=body, headers=world.headers("m1a_viewer"))
    assert denied.status_code == 403

    wrong = await api.post(
        "/v1/flow-instances",
        json={**body, "overrides": {"price_tolerance_pct": "lots"}},
        headers=world.headers("m1a_admin"),
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["details"]["errors"] == [
        {"path": "overrides.price_tolerance_pct", "problem": "'lots' is not a decimal number"}
    ]
    mismatch = await api.post("/v1/flow-instances", json=body, headers=world.headers("m1a_admin"))
    assert mismatch.json()["error"]["details"]["errors"] == [
        {"path": "bindings.erp", "problem": "is a netsuite connection; expected businesscentral"}
    ]
    created = await api.post(
        "/v1/flow-instances", json={**body, "overrides": {"erp": "netsuite"}}, headers=world.headers("m1a_admin")
    )
    assert created.status_code == 201, created.text
    inst = created.json()
    assert (inst["template"], inst["template_version"], inst["engine_version"], inst["overrides"]) == (
        "order_import", 1, 1, {"erp": "netsuite"},
    )  # fmt: skip

    foreign = await api.get(f"/v1/flow-instances/{inst['id']}", headers=world.headers("m1b_admin"))
    assert foreign.status_code == 404
    patched = await api.patch(
        f"/v1/flow-instances/{inst['id']}",
        json={"overrides": {"erp": "netsuite", "discount_threshold_pct": "12"}},
        headers=world.headers("m1a_admin"),
    )
    assert (patched.status_code, patched.json()["engine_version"]) == (200, 2)
    page = await api.get(
        "/v1/flow-instances", params={"template": "order_import"}, headers=world.headers("p1_operator")
    )
    assert [i["id"] for i in page.json()["items"]] == [inst["id"]]

    dry = await api.post(
        "/v1/templates/order_import/upgrade", json={"to_version": 2}, headers=world.headers("m1a_admin")
    )
    assert [(i["status"], i["params"]["kept"]) for i in dry.json()["items"]] == [
        ("would_upgrade", {"discount_threshold_pct": "12", "erp": "netsuite"})
    ]
    operator = await api.post(
        "/v1/templates/order_import/upgrade", json={"to_version": 2}, headers=world.headers("p1_operator")
    )
    assert operator.status_code == 403
