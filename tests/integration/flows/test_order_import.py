"""order_import through the real engine: happy path (idempotent), SKU fix + replay, credit-hold rejection.

The connector actions are in-memory stand-ins (tests/integration/flows/conftest.py) until
crossdock/connectors/actions lands; everything else (engine, transforms, instances) is real.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.cases.models import Case, CaseRun
from crossdock.connectors.sandbox.shopify_orders import make_order, make_product
from crossdock.engine import service as engine_service
from crossdock.engine.core import Engine
from crossdock.engine.models import Run
from crossdock.engine.schemas import RunStart
from crossdock.flows import service
from crossdock.flows.models import FlowInstance
from crossdock.flows.schemas import InstanceCreate, InstanceUpdate
from tests.integration.engine.conftest import get_run, run_to_rest

from .conftest import SYSTEM, FakeSystems, connect, new_merchant

ORDER = make_order(4, variants=make_product(1)["variants"], line_count=2)  # 10% discount, total 93.34


async def instance(container: Container, engine: Engine, merchant: str, **overrides: Any) -> FlowInstance:
    bindings = {
        "storefront": await connect(container, merchant, "shopify"),
        "erp": await connect(container, merchant, str(overrides.get("erp", "businesscentral"))),
    }
    async with container.db.session(SYSTEM.scope) as s:
        body = InstanceCreate(
            merchant_id=merchant, template="order_import", version=1, overrides=overrides, bindings=bindings
        )
        return await service.create_instance(s, SYSTEM, engine, body)


async def start(container: Container, flow_id: str, order: dict[str, Any], key: str | None = None) -> str:
    async with container.db.session(SYSTEM.scope) as s:
        run, _ = await engine_service.start_run(s, SYSTEM, flow_id, RunStart(input=order, idempotency_key=key))
        return run.id


def erp_items(systems: FakeSystems, *numbers: str, price: float = 43.83) -> None:
    systems.items.update({n: {"number": n, "unitPrice": price} for n in numbers})


async def test_happy_path_creates_the_erp_order_once(
    container: Container, engine: Engine, systems: FakeSystems
) -> None:
    _p, merchant = await new_merchant(container, "Aurora")
    inst = await instance(container, engine, merchant, discount_threshold_pct="50")
    erp_items(systems, "CD-00001-M", "CD-00001-S")

    first = await start(container, inst.engine_flow_id, ORDER)
    again = await start(container, inst.engine_flow_id, ORDER)  # a redelivery under another run
    assert await run_to_rest(container, engine) == {first: "succeeded", again: "succeeded"}

    assert (await get_run(container, first)).output == {"order": "5100000000004", "erp_order": "SO1000", "held": False}
    assert (await get_run(container, again)).output["erp_order"] == "SO1000"
    assert list(systems.orders) == ["5100000000004"]
    body = systems.orders["5100000000004"]["body"]
    assert [
        (li["lineObjectNumber"], li["quantity"], li["unitPrice"], li["discountAmount"])
        for li in body["salesOrderLines"]
    ] == [
        ("CD-00001-M", 1.0, 43.83, 4.39),
        ("CD-00001-S", 1.0, 43.83, 4.38),
    ]
    assert (body["customerNumber"], body["shipToCity"]) == ("C10000", "Seattle")
    writebacks = [d for name, d in systems.calls if name == "shopify.update_order"]
    assert writebacks[0]["changes"] == {"note_attributes": [{"name": "erp_order_number", "value": "SO1000"}]}


async def test_unknown_sku_fails_then_fixing_the_sku_map_and_replaying_completes(
    container: Container, engine: Engine, systems: FakeSystems
) -> None:
    _p, merchant = await new_merchant(container, "Aurora")
    inst = await instance(container, engine, merchant, sku_map={"CD-00001-M": "1000"}, discount_threshold_pct="50")
    erp_items(systems, "1000", "1001")
    run_id = await start(container, inst.engine_flow_id, ORDER)

    assert await run_to_rest(container, engine) == {run_id: "needs_attention"}
    run = await get_run(container, run_id)
    assert (run.error["category"], run.error["step"], run.error["kind"]) == ("sku_not_found", "validate_skus", "data")
    assert run.error["message"].startswith("SKU(s) not found in the ERP: CD-00001-S.")
    assert systems.orders == {}

    async with container.db.session(SYSTEM.scope) as s:
        fixed = InstanceUpdate(
            overrides={"sku_map": {"CD-00001-M": "1000", "CD-00001-S": "1001"}, "discount_threshold_pct": "50"}
        )
        await service.update_instance(s, SYSTEM, engine, inst.id, fixed)
    async with container.db.session(SYSTEM.scope) as s:
        await engine_service.replay_run(s, SYSTEM, run_id, "skus")

    final = await run_to_rest(container, engine)
    assert final == {run_id: "succeeded"}, (await get_run(container, run_id)).error
    assert (await get_run(container, run_id)).version_id == run.version_id  # still its pinned version
    lines = systems.orders["5100000000004"]["body"]["salesOrderLines"]
    assert [li["lineObjectNumber"] for li in lines] == ["1000", "1001"]


async def test_credit_over_limit_waits_and_a_rejection_holds_the_order(
    container: Container, engine: Engine, systems: FakeSystems
) -> None:
    _p, merchant = await new_merchant(container, "Aurora")
    inst = await instance(container, engine, merchant, discount_threshold_pct="50")
    erp_items(systems, "CD-00001-M", "CD-00001-S")
    systems.credit = {"creditLimit": 100, "balanceDue": 10}
    run_id = await start(container, inst.engine_flow_id, ORDER)

    assert await run_to_rest(container, engine) == {run_id: "waiting"}
    async with container.db.session(SYSTEM.scope) as s:
        waits, _ = await engine_service.list_waits(s, limit=10, cursor=None, status="open")
        assert [(w.kind, w.approvers, w.prompt) for w in waits] == [
            ("approval", ["merchant_approver"],
             "Order #1005 (93.34 USD) takes Mia Smith to 103.34, over the credit limit of 100.00. Release it?"),
        ]  # fmt: skip
        decision = {"decision": "rejected", "comment": "no", "by": "usr_x"}
        await engine_service.resolve_wait(s, SYSTEM, waits[0].id, resolution=decision, idempotency_key="k1")

    assert await run_to_rest(container, engine) == {run_id: "needs_attention"}
    # The exception desk (installed by bootstrap) turned the raise_case step into a routed case.
    async with container.db.session(SYSTEM.scope) as s:
        case = (
            await s.scalars(select(Case).join(CaseRun, CaseRun.case_id == Case.id).where(CaseRun.run_id == run_id))
        ).one()
    assert (case.category, case.severity, case.step_path, case.team) == (
        "credit_hold",
        "high",
        "decide.credit_hold",
        "finance",
    )
    assert case.message == "Order #1005 is held: 103.34 exceeds the credit limit 100.00 and was not released."
    assert systems.orders == {}  # nothing reached the ERP
    assert not [c for c in systems.calls if c[0] == "shopify.update_order"]


async def test_approved_credit_continues_to_the_erp(container: Container, engine: Engine, systems: FakeSystems) -> None:
    _p, merchant = await new_merchant(container, "Aurora")
    inst = await instance(container, engine, merchant, discount_threshold_pct="50")
    erp_items(systems, "CD-00001-M", "CD-00001-S")
    systems.credit = {"creditLimit": 100, "balanceDue": 10}
    run_id = await start(container, inst.engine_flow_id, ORDER)
    assert await run_to_rest(container, engine) == {run_id: "waiting"}
    async with container.db.session(SYSTEM.scope) as s:
        waits, _ = await engine_service.list_waits(s, limit=10, cursor=None, status="open")
        await engine_service.resolve_wait(
            s, SYSTEM, waits[0].id, resolution={"decision": "approved"}, idempotency_key="k"
        )

    assert await run_to_rest(container, engine) == {run_id: "succeeded"}
    assert list(systems.orders) == ["5100000000004"]
    async with container.db.engine.connect() as conn:
        assert (await conn.execute(select(Run.status))).scalars().all() == ["succeeded"]
