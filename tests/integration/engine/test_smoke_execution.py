"""A flow runs end to end: map, condition, log, foreach; every step is journalled."""

from __future__ import annotations

from crossdock.bootstrap import Container
from crossdock.engine import service
from crossdock.engine.core import Engine

from .conftest import SYSTEM, get_run, publish, run_to_rest, start

FLOW = {
    "steps": [
        {"id": "order", "type": "map", "output": {"id": "=input.id", "total": "=sum(input.lines[].amount)"}},
        {
            "id": "big",
            "type": "condition",
            "if": "steps.order.total > `100`",
            "then": [{"id": "note", "type": "action", "action": "log", "input": {"message": "big {{steps.order.id}}"}}],
            "else": [{"id": "small", "type": "map", "output": "small"}],
        },
        {
            "id": "lines",
            "type": "foreach",
            "items": "input.lines",
            "concurrency": 2,
            "steps": [{"id": "line", "type": "map", "output": {"sku": "=upper(item.sku)", "i": "=index"}}],
        },
    ],
    "output": {"order": "=steps.order", "lines": "=steps.lines"},
}


async def test_run_executes_and_journals_every_step(container: Container, engine: Engine, merchant: str) -> None:
    flow_id = await publish(container, engine, merchant, "smoke", FLOW)
    run_id = await start(
        container, flow_id, {"id": "A1", "lines": [{"sku": "a", "amount": 60}, {"sku": "b", "amount": 50}]}
    )

    final = await run_to_rest(container, engine)

    assert final == {run_id: "succeeded"}
    run = await get_run(container, run_id)
    assert run.output == {
        "order": {"id": "A1", "total": 110},
        "lines": [{"sku": "A", "i": 0}, {"sku": "B", "i": 1}],
    }
    async with container.db.session(SYSTEM.scope) as s:
        journal = await service.get_journal(s, run_id)
    assert sorted((j.step_path, j.attempt, j.status) for j in journal) == [
        ("big", 1, "succeeded"),
        ("big.note", 1, "succeeded"),
        ("lines", 1, "succeeded"),
        ("lines[0].line", 1, "succeeded"),
        ("lines[1].line", 1, "succeeded"),
        ("order", 1, "succeeded"),
    ]
    assert journal[-1].step_path == "lines"
    assert all(j.duration_ms >= 0 for j in journal)
