"""Retries with backoff, terminal failure to needs_attention, cancel, and replay with edited input."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.core.errors import InvalidState
from crossdock.engine import service
from crossdock.engine.actions import ActionContext, ActionSpec
from crossdock.engine.core import Engine
from crossdock.governance.models import AuditEvent

from .conftest import SYSTEM, get_run, publish, run_to_rest, start


def flaky(failures: int, calls: list[str]) -> ActionSpec:
    async def fn(ctx: ActionContext, data: Any) -> Any:
        calls.append(ctx.idempotency_key)
        if len(calls) <= failures:
            raise ConnectorError(
                "ERP busy", kind=FailureKind.TRANSIENT, category=FailureCategory.RATE_LIMIT, system="erp"
            )
        return {"ok": True, "n": len(calls)}

    return ActionSpec("test.flaky", fn)


RETRY = {"max_attempts": 3, "backoff_s": 0.01, "jitter": 0}


async def test_transient_failure_retries_then_succeeds(container: Container, engine: Engine, merchant: str) -> None:
    calls: list[str] = []
    engine.actions.register(flaky(2, calls))
    flow_id = await publish(
        container,
        engine,
        merchant,
        "flaky",
        {"steps": [{"id": "push", "type": "action", "action": "test.flaky", "key": "=input.no", "retry": RETRY}]},
    )
    run_id = await start(container, flow_id, {"no": "SO-1"})

    final = await run_to_rest(container, engine, extra_scheduler=True)

    assert final == {run_id: "succeeded"}
    assert calls == [f"{run_id}:push:SO-1"] * 3
    async with container.db.session(SYSTEM.scope) as s:
        journal = await service.get_journal(s, run_id)
    assert [(j.attempt, j.status) for j in journal] == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert journal[0].error["category"] == "rate_limit"


async def test_terminal_failure_needs_attention_and_is_never_dropped(
    container: Container, engine: Engine, merchant: str
) -> None:
    flow_id = await publish(
        container,
        engine,
        merchant,
        "failing",
        {
            "steps": [
                {
                    "id": "boom",
                    "type": "action",
                    "action": "fail",
                    "input": {"message": "SKU X-1 unknown", "category": "sku_not_found"},
                }
            ]
        },
    )
    run_id = await start(container, flow_id, {})

    final = await run_to_rest(container, engine)

    assert final == {run_id: "needs_attention"}
    run = await get_run(container, run_id)
    assert run.error is not None
    assert (run.error["step"], run.error["category"], run.error["message"]) == (
        "boom",
        "sku_not_found",
        "SKU X-1 unknown",
    )


async def test_replay_with_edited_input_completes_and_journal_keeps_both_attempts(
    container: Container, engine: Engine, merchant: str
) -> None:
    flow = {
        "steps": [
            {"id": "prepare", "type": "map", "output": {"sku": "=input.sku"}},
            {
                "id": "check",
                "type": "condition",
                "if": "input.sku == 'GOOD'",
                "then": [{"id": "ok", "type": "map", "output": "mapped"}],
                "else": [{"id": "bad", "type": "action", "action": "fail", "input": {"message": "unknown SKU"}}],
            },
        ]
    }
    flow_id = await publish(container, engine, merchant, "replayable", flow)
    run_id = await start(container, flow_id, {"sku": "BAD"})
    assert await run_to_rest(container, engine) == {run_id: "needs_attention"}

    async with container.db.session(SYSTEM.scope) as s:
        await service.replay_run(s, SYSTEM, run_id, "prepare", new_input={"sku": "GOOD"}, edit=True)
    final = await run_to_rest(container, engine)

    assert final == {run_id: "succeeded"}
    async with container.db.session(SYSTEM.scope) as s:
        journal = await service.get_journal(s, run_id)
        audits = (await s.scalars(select(AuditEvent).where(AuditEvent.action == "runs.run.replay"))).all()
    assert [(j.step_path, j.attempt, j.status, j.superseded) for j in journal] == [
        ("prepare", 1, "succeeded", True),
        ("check.bad", 1, "failed", True),
        ("prepare", 2, "succeeded", False),
        ("check.ok", 1, "succeeded", False),
        ("check", 1, "succeeded", False),
    ]
    run = await get_run(container, run_id)
    assert run.input == {"sku": "GOOD"}
    assert run.generation == 1
    assert [(r["from_step"], r["edited_input"]) for r in run.replays] == [("prepare", True)]
    assert len(audits) == 1
    assert audits[0].before["input"] == {"sku": "BAD"}
    assert audits[0].after["input"] == {"sku": "GOOD"}


async def test_cancel_fences_and_refuses_finished_runs(container: Container, engine: Engine, merchant: str) -> None:
    flow_id = await publish(
        container, engine, merchant, "slow", {"steps": [{"id": "nap", "type": "timer", "seconds": 60}]}
    )
    run_id = await start(container, flow_id, {})
    assert await run_to_rest(container, engine) == {run_id: "waiting"}

    async with container.db.session(SYSTEM.scope) as s:
        run = await service.cancel_run(s, SYSTEM, run_id)
        assert (run.status, run.lease_epoch) == ("cancelled", 2)
    async with container.db.session(SYSTEM.scope) as s:
        with pytest.raises(InvalidState):
            await service.cancel_run(s, SYSTEM, run_id)


async def test_an_engine_error_after_the_last_effect_keeps_its_ledger_row(
    container: Container, engine: Engine, merchant: str
) -> None:
    """The last effect's rows ride with the run's final update; when finishing fails (here the flow's
    output expression raises), they are still committed, so a replay does not repeat the effect."""
    from crossdock.engine.models import Effect, JournalEntry

    calls: list[str] = []

    async def book(ctx: ActionContext, data: Any) -> Any:
        calls.append(ctx.idempotency_key)
        return {"booked": True}

    engine.actions.register(ActionSpec("test.book", book))
    flow_id = await publish(
        container,
        engine,
        merchant,
        "book-then-broken-output",
        {
            "steps": [{"id": "book", "type": "action", "action": "test.book", "key": "=input.no"}],
            "output": "=add(input.no, `1`)",  # a string plus a number: fails at run time
        },
    )
    run_id = await start(container, flow_id, {"no": "SO-9"})

    final = await run_to_rest(container, engine)

    assert final == {run_id: "needs_attention"}
    async with container.db.engine.connect() as conn:
        ledger = (await conn.execute(select(Effect.idempotency_key).where(Effect.run_id == run_id))).scalars().all()
        journal = (
            await conn.execute(select(JournalEntry.step_path, JournalEntry.status).where(JournalEntry.run_id == run_id))
        ).all()
    assert ledger == calls == [f"{run_id}:book:SO-9"]
    assert [tuple(j) for j in journal] == [("book", "succeeded")]

    async with container.db.session(SYSTEM.scope) as s:
        await service.replay_run(s, SYSTEM, run_id, "book")
    await run_to_rest(container, engine)
    assert len(calls) == 1  # the replayed step found its effect in the ledger
