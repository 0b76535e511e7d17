"""The desk on the real engine: the sweep opens and groups cases for failed runs, retry and edit-and-replay
go through the engine's replay and auto-resolve the case, and raise_case steps open a case themselves."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.cases.models import CaseEvent, CaseRun
from crossdock.cases.runtime import install, sync_failed_runs
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.core.tenancy import Scope
from crossdock.engine import service as runs
from crossdock.engine.actions import ActionContext, ActionSpec, StepFailed
from crossdock.engine.core import Engine
from tests.factories import World
from tests.integration.engine.conftest import get_run, publish, run_to_rest, start

from .conftest import SYSTEM, all_cases, audit_actions

LOOKUP_FLOW = {
    "steps": [
        {"id": "order", "type": "map", "output": {"no": "=input.no"}},
        {"id": "lookup", "type": "action", "action": "test.lookup", "input": {"sku": "=input.sku"}},
    ]
}
HOLD_FLOW = {
    "steps": [
        {
            "id": "credit",
            "type": "condition",
            "if": "input.total > `100`",
            "then": [
                {
                    "id": "hold",
                    "type": "raise_case",
                    "category": "credit_hold",
                    "severity": "high",
                    "message": "Order over the customer's credit limit",
                    "data": {"trace": "=input.customer", "amount": "=input.total"},
                }
            ],
        },
        {"id": "post", "type": "map", "output": "posted"},
    ]
}


def lookup(known: set[str]) -> ActionSpec:
    async def fn(ctx: ActionContext, data: Any) -> Any:
        if data["sku"] not in known:
            raise StepFailed(f"SKU {data['sku']} not found in the item master", category="sku_not_found")
        return {"item": data["sku"]}

    return ActionSpec("test.lookup", fn, effect=False)


async def journal(container: Container, run_id: str) -> list[tuple[str, int, str, bool]]:
    async with container.db.session(SYSTEM.scope) as s:
        return [(j.step_path, j.attempt, j.status, j.superseded) for j in await runs.get_journal(s, run_id)]


async def timeline(container: Container, case_id: str) -> list[str]:
    async with container.db.session(Scope.everything()) as s:
        q = select(CaseEvent.kind).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)
        return list((await s.scalars(q)).all())


async def test_sweep_groups_failed_runs_then_retry_auto_resolves(
    container: Container, engine: Engine, world: World, api: httpx.AsyncClient
) -> None:
    known: set[str] = set()
    engine.actions.register(lookup(known))
    flow_id = await publish(container, engine, world.ids["M1a"], "import", LOOKUP_FLOW)
    r1 = await start(container, flow_id, {"no": "A1", "sku": "X-1"})
    r2 = await start(container, flow_id, {"no": "A2", "sku": "X-1"})
    assert await run_to_rest(container, engine) == {r1: "needs_attention", r2: "needs_attention"}

    first = await sync_failed_runs(container)
    again = await sync_failed_runs(container)

    assert (first, again) == ({"linked": 2, "resolved": 0}, {"linked": 0, "resolved": 0})
    [case] = await all_cases(container)
    assert (case.category, case.team, case.occurrences, case.step_path) == ("sku_not_found", "catalog", 2, "lookup")
    assert (case.run_id, case.payload, case.flow_id) == (r1, {"no": "A1", "sku": "X-1"}, flow_id)

    known.add("X-1")  # the fix: the SKU now exists
    resp = await api.post(f"/v1/cases/{case.id}/retry", headers=world.headers("m1a_admin"))
    assert (resp.status_code, resp.json()["state"]) == (200, "in_progress")
    assert await run_to_rest(container, engine) == {r1: "succeeded", r2: "succeeded"}
    assert await sync_failed_runs(container) == {"linked": 0, "resolved": 1}

    [after] = await all_cases(container)
    assert (after.state, after.resolution, after.open_key) == ("resolved", "auto: run succeeded", None)
    assert await timeline(container, case.id) == ["open", "grouped", "retry", "auto_resolve"]
    assert await journal(container, r1) == [
        ("order", 1, "succeeded", False),
        ("lookup", 1, "failed", True),
        ("lookup", 2, "succeeded", False),
    ]
    assert (await audit_actions(container, case.id))[-2:] == ["cases.case.retry", "cases.case.auto_resolve"]


async def test_edit_and_replay_runs_the_new_payload_and_auto_resolves(
    container: Container, engine: Engine, world: World, api: httpx.AsyncClient
) -> None:
    engine.actions.register(lookup({"GOOD"}))
    flow_id = await publish(container, engine, world.ids["M1a"], "import", LOOKUP_FLOW)
    run_id = await start(container, flow_id, {"no": "A1", "sku": "BAD"})
    await run_to_rest(container, engine)
    await sync_failed_runs(container)
    [case] = await all_cases(container)
    url = f"/v1/cases/{case.id}/replay"
    h = world.headers("m1a_admin")

    foreign_run = await api.post(url, json={"payload": {}, "run_id": "run_01J0000000000000000000000"}, headers=h)
    assert (foreign_run.status_code, foreign_run.json()["error"]["code"]) == (422, "validation_error")
    assert (await get_run(container, run_id)).status == "needs_attention"

    resp = await api.post(url, json={"payload": {"no": "A1", "sku": "GOOD"}}, headers=h)
    assert resp.status_code == 200
    assert await run_to_rest(container, engine) == {run_id: "succeeded"}
    assert await sync_failed_runs(container) == {"linked": 0, "resolved": 1}

    run = await get_run(container, run_id)
    assert (run.input, run.output) == ({"no": "A1", "sku": "GOOD"}, {"item": "GOOD"})
    assert await journal(container, run_id) == [
        ("order", 1, "succeeded", False),
        ("lookup", 1, "failed", True),
        ("lookup", 2, "succeeded", False),
    ]
    [after] = await all_cases(container)
    assert (after.state, after.payload) == ("resolved", {"no": "A1", "sku": "GOOD"})
    detail = (await api.get(f"/v1/cases/{case.id}", headers=h)).json()
    replay = next(e for e in detail["timeline"] if e["kind"] == "replay")
    assert replay["data"]["before"]["payload"] == {"no": "A1", "sku": "BAD"}
    assert replay["data"]["after"]["payload"] == {"no": "A1", "sku": "GOOD"}
    assert await audit_actions(container, case.id) == [
        "cases.case.open",
        "cases.case.replay",
        "cases.case.auto_resolve",
    ]


async def test_raise_case_step_opens_a_case_and_stops_the_run(
    container: Container, engine: Engine, world: World
) -> None:
    install(container)
    flow_id = await publish(container, engine, world.ids["M1a"], "b2b", HOLD_FLOW)
    run_id = await start(container, flow_id, {"customer": "C-7", "total": 500})
    assert await run_to_rest(container, engine) == {run_id: "needs_attention"}

    [case] = await all_cases(container)
    run = await get_run(container, run_id)
    assert (case.category, case.team, case.severity, case.sla_minutes) == ("credit_hold", "finance", "high", 240)
    assert (case.run_id, case.step_path, case.amount) == (run_id, "credit.hold", 500.0)
    assert (run.error["type"], run.error["category"], run.error["step"]) == ("CaseRaised", "credit_hold", "credit.hold")
    assert case.id in run.error["message"]
    assert await sync_failed_runs(container) == {"linked": 0, "resolved": 0}

    async with container.db.session(SYSTEM.scope) as s:  # retry unchanged: the hold is raised again
        from crossdock.cases import service

        await service.retry(s, SYSTEM, case.id)
    assert await run_to_rest(container, engine) == {run_id: "needs_attention"}
    [held] = await all_cases(container)
    assert (held.state, held.occurrences) == ("in_progress", 1)
    assert await timeline(container, case.id) == ["open", "retry", "run_failed_again"]

    async with container.db.session(SYSTEM.scope) as s:  # the limit was raised: replay under it
        await service.edit_and_replay(s, SYSTEM, case.id, {"customer": "C-7", "total": 80})
    assert await run_to_rest(container, engine) == {run_id: "succeeded"}
    assert await sync_failed_runs(container) == {"linked": 0, "resolved": 1}
    [done] = await all_cases(container)
    assert done.state == "resolved"


async def test_exhausted_transient_failures_group_per_system(
    container: Container, engine: Engine, world: World
) -> None:
    async def throttled(ctx: ActionContext, data: Any) -> Any:
        raise ConnectorError("ERP busy", kind=FailureKind.TRANSIENT, category=FailureCategory.RATE_LIMIT, system="erp")

    engine.actions.register(ActionSpec("test.throttled", throttled))
    step = {"id": "push", "type": "action", "action": "test.throttled", "retry": {"max_attempts": 1}}
    f1 = await publish(container, engine, world.ids["M1a"], "orders", {"steps": [step]})
    f2 = await publish(container, engine, world.ids["M1a"], "refunds", {"steps": [{**step, "id": "credit"}]})
    r1, r2 = await start(container, f1, {}), await start(container, f2, {})
    await run_to_rest(container, engine)

    await sync_failed_runs(container)

    [case] = await all_cases(container)
    assert (case.category, case.team, case.occurrences) == ("rate_limit", "integrations", 2)
    async with container.db.session(Scope.everything()) as s:
        linked = sorted((await s.scalars(select(CaseRun.run_id))).all())
    assert linked == sorted([r1, r2])


async def test_concurrent_sweepers_link_each_run_once(container: Container, engine: Engine, world: World) -> None:
    engine.actions.register(lookup(set()))
    flow_id = await publish(container, engine, world.ids["M1a"], "import", LOOKUP_FLOW)
    run_ids = [await start(container, flow_id, {"no": f"A{i}", "sku": "X-9"}) for i in range(4)]
    await run_to_rest(container, engine)

    await asyncio.gather(sync_failed_runs(container), sync_failed_runs(container), sync_failed_runs(container))

    [case] = await all_cases(container)
    assert case.occurrences == 4
    async with container.db.session(Scope.everything()) as s:
        links = (await s.scalars(select(CaseRun.run_id).where(CaseRun.case_id == case.id))).all()
    assert sorted(links) == sorted(run_ids)
    assert (await audit_actions(container, case.id)).count("cases.case.grouped") == 3
