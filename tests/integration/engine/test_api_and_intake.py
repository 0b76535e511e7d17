"""The engine API end to end over ASGI: flows, runs, journal, approvals, and webhook intake."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from sqlalchemy import func, select, text

from crossdock.bootstrap import Container
from crossdock.engine.api import hooks_router, router
from crossdock.engine.core import Engine, engine_of
from crossdock.engine.models import Run
from crossdock.engine.worker import Worker
from tests.factories import World, make_world

from .conftest import publish_webhook_flow, run_to_rest

FLOW = {
    "triggers": [{"type": "webhook", "name": "orders", "secret": "s3cret"}, {"type": "manual"}],
    "steps": [
        {"id": "ask", "type": "approval", "prompt": "Order {{input.id}}"},
        {"id": "result", "type": "map", "output": {"id": "=input.id", "decision": "=steps.ask.decision"}},
    ],
}


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    from crossdock.web.app import create_app

    app = create_app(container)
    app.include_router(router)
    app.include_router(hooks_router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crossdock.test") as c:
        yield c
    await engine_of(container).close()


@pytest.fixture
async def world(container: Container) -> World:
    return await make_world(container)


def sign(body: bytes, secret: str = "s3cret") -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def published_flow(api: httpx.AsyncClient, world: World) -> tuple[str, str]:
    return await publish_webhook_flow(api, world, FLOW)


async def test_webhook_dedup_and_signature(api: httpx.AsyncClient, world: World, container: Container) -> None:
    _flow_id, endpoint = await published_flow(api, world)
    body = orjson.dumps({"id": 1001})

    first = await api.post(
        f"/hooks/{endpoint}", content=body, headers={"X-Crossdock-Signature": sign(body), "X-Event-Id": "ev-1"}
    )
    again = await api.post(
        f"/hooks/{endpoint}", content=body, headers={"X-Crossdock-Signature": sign(body), "X-Event-Id": "ev-1"}
    )
    forged = await api.post(
        f"/hooks/{endpoint}", content=body, headers={"X-Crossdock-Signature": sign(body, "x"), "X-Event-Id": "ev-2"}
    )
    unknown = await api.post("/hooks/trg_nope", content=body)

    assert (first.status_code, first.json()["duplicate"]) == (200, False)
    assert (again.status_code, again.json()["duplicate"], again.json()["run_id"]) == (200, True, first.json()["run_id"])
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "invalid_signature")
    assert unknown.status_code == 404
    async with container.db.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(Run))).scalar() == 1
        trigger = (await conn.execute(select(Run.trigger))).scalar_one()
    # the run is the stored event: its trigger keeps the event id answered and the kept headers
    assert (trigger["event_id"], trigger["headers"]["x-event-id"]) == (first.json()["event_id"], "ev-1")


async def test_concurrent_webhooks_are_group_committed(
    api: httpx.AsyncClient, world: World, container: Container
) -> None:
    _flow_id, endpoint = await published_flow(api, world)
    engine = engine_of(container)
    commits_before = engine.intake.commits

    async def deliver(i: int) -> httpx.Response:
        body = orjson.dumps({"id": i % 40})
        return await api.post(
            f"/hooks/{endpoint}",
            content=body,
            headers={"X-Crossdock-Signature": sign(body), "X-Event-Id": f"e{i % 40}"},
        )

    responses = await asyncio.gather(*(deliver(i) for i in range(80)))

    assert {r.status_code for r in responses} == {200}
    by_event: dict[int, set[str]] = {}
    for i, r in enumerate(responses):
        by_event.setdefault(i % 40, set()).add(r.json()["run_id"])
    assert all(len(ids) == 1 for ids in by_event.values())
    assert sum(not r.json()["duplicate"] for r in responses) == 40
    assert engine.intake.commits - commits_before < 80
    async with container.db.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(Run))).scalar() == 40


async def test_manual_run_approval_and_journal_through_api(
    api: httpx.AsyncClient, world: World, container: Container
) -> None:
    flow_id, _ = await published_flow(api, world)
    h = world.headers("m1a_admin")
    r = await api.post(f"/v1/flows/{flow_id}/runs", json={"input": {"id": 7}, "idempotency_key": "k"}, headers=h)
    assert r.status_code == 201
    run_id = r.json()["id"]
    engine: Engine = engine_of(container)
    assert await run_to_rest(container, engine) == {run_id: "waiting"}

    waits = (await api.get("/v1/waits", params={"status": "open"}, headers=h)).json()["items"]
    assert [(w["kind"], w["prompt"]) for w in waits] == [("approval", "Order 7")]
    viewer = await api.post(
        f"/v1/approvals/{waits[0]['id']}/decide",
        json={"idempotency_key": "d1", "decision": "approved"},
        headers=world.headers("m1a_viewer"),
    )
    assert viewer.status_code == 403
    other_merchant = await api.post(
        f"/v1/approvals/{waits[0]['id']}/decide",
        json={"idempotency_key": "d1", "decision": "approved"},
        headers=world.headers("m1b_admin"),
    )
    assert other_merchant.status_code == 404
    for _ in range(2):
        d = await api.post(
            f"/v1/approvals/{waits[0]['id']}/decide", json={"idempotency_key": "d1", "decision": "approved"}, headers=h
        )
        assert (d.status_code, d.json()["status"]) == (200, "resolved")

    assert await run_to_rest(container, engine) == {run_id: "succeeded"}
    run = (await api.get(f"/v1/runs/{run_id}", headers=h)).json()
    assert run["output"] == {"id": 7, "decision": "approved"}
    journal = (await api.get(f"/v1/runs/{run_id}/journal", headers=h)).json()
    assert [(j["step_path"], j["attempt"], j["status"]) for j in journal] == [
        ("ask", 1, "succeeded"),
        ("result", 1, "succeeded"),
    ]
    listed = (await api.get("/v1/runs", params={"status": "succeeded", "flow_id": flow_id}, headers=h)).json()
    assert [x["id"] for x in listed["items"]] == [run_id]
    hidden = await api.get(f"/v1/runs/{run_id}", headers=world.headers("m1b_admin"))
    assert hidden.status_code == 404


async def test_bad_definition_is_rejected_with_path(api: httpx.AsyncClient, world: World) -> None:
    bad = {"steps": [{"id": "a", "type": "map", "output": "=input.[bad"}]}
    r = await api.post(
        "/v1/flows",
        json={"merchant_id": world.ids["M1a"], "key": "bad", "name": "Bad", "definition": bad},
        headers=world.headers("m1a_admin"),
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_flow"
    assert r.json()["error"]["details"]["errors"][0]["path"] == "steps[0].output"


async def test_webhook_input_is_stored_as_sent_and_claimed_back(
    api: httpx.AsyncClient, world: World, container: Container
) -> None:
    """The run's input goes in as JSON text (PostgreSQL `json`, migration 0009): every JSON value
    type comes back equal through the ORM and through the worker's claim, and PostgreSQL keeps the
    document's own key order (`jsonb` would have reordered the keys)."""
    _flow_id, endpoint = await published_flow(api, world)
    payload = {
        "zeta": 'ünïcode ✓ "quoted" \\ back',
        "id": 2002,
        "price": "19.99",
        "ratio": 0.125,
        "big": 2**53 + 1,
        "none": None,
        "flags": [True, False, None],
        "nested": {"b": [1, {"c": "d"}], "a": {}},
    }
    bodies = [orjson.dumps({**payload, "id": 2002 + i}) for i in range(3)]
    responses = await asyncio.gather(
        *(
            api.post(f"/hooks/{endpoint}", content=b, headers={"X-Crossdock-Signature": sign(b), "X-Event-Id": f"j{i}"})
            for i, b in enumerate(bodies)
        )
    )
    assert [r.status_code for r in responses] == [200, 200, 200]
    async with container.db.engine.connect() as conn:
        stored = dict((await conn.execute(select(Run.id, Run.input))).all())
        if container.db.dialect == "postgresql":
            kind = (
                await conn.execute(
                    text(
                        "SELECT data_type FROM information_schema.columns WHERE table_name = 'engine_runs' AND column_name = 'input'"
                    )
                )
            ).scalar_one()
            keys = (await conn.execute(text("SELECT json_object_keys(input) FROM engine_runs LIMIT 8"))).scalars().all()
            assert (kind, keys) == ("json", list(payload))
    expected = {r.json()["run_id"]: {**payload, "id": 2002 + i} for i, r in enumerate(responses)}
    assert stored == expected
    claimed = await Worker(engine_of(container), owner="json-test").claim(10)
    assert {run.id: run.input for run in claimed} == expected
