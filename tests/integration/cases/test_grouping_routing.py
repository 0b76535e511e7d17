"""Grouping by trace key, routing rules and their defaults, and the SLA clock with an injected `now`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.cases import routing
from crossdock.cases.models import CaseEvent, CaseRun
from crossdock.cases.schemas import RoutingRuleCreate
from crossdock.cases.sla import escalate_due
from crossdock.core.clock import utcnow
from crossdock.core.tenancy import Scope
from tests.factories import World

from .conftest import SYSTEM, all_cases, audit_actions, failure, open_case


async def test_same_cause_same_merchant_groups_into_one_case(container: Container, world: World) -> None:
    first = failure(world, "M1a", cause="SKU X-1")
    second = failure(world, "M1a", cause="SKU X-1")

    a = await open_case(container, first)
    b = await open_case(container, second)

    assert b.id == a.id
    assert b.occurrences == 2
    async with container.db.session(Scope.everything()) as s:
        links = (await s.scalars(select(CaseRun.run_id).where(CaseRun.case_id == a.id))).all()
    assert sorted(links) == sorted([first.run_id, second.run_id])
    assert await audit_actions(container, a.id) == ["cases.case.open", "cases.case.grouped"]


async def test_other_merchant_or_other_cause_opens_a_separate_case(container: Container, world: World) -> None:
    a = await open_case(container, failure(world, "M1a", cause="SKU X-1"))
    b = await open_case(container, failure(world, "M1b", cause="SKU X-1"))
    c = await open_case(container, failure(world, "M1a", cause="SKU X-2"))

    assert len({a.id, b.id, c.id}) == 3
    assert [x.occurrences for x in await all_cases(container)] == [1, 1, 1]


async def test_the_same_run_failure_twice_counts_once(container: Container, world: World) -> None:
    f = failure(world, "M1a")

    a = await open_case(container, f)
    b = await open_case(container, f)

    assert (b.id, b.occurrences) == (a.id, 1)
    assert await audit_actions(container) == ["cases.case.open"]


async def test_a_closed_case_is_not_reused_for_a_new_failure(container: Container, world: World) -> None:
    from crossdock.cases import service

    a = await open_case(container, failure(world, "M1a"))
    async with container.db.session(SYSTEM.scope) as s:
        await service.resolve(s, SYSTEM, a.id, "mapped the SKU")

    b = await open_case(container, failure(world, "M1a"))

    assert b.id != a.id
    assert b.trace_key == a.trace_key
    assert (b.state, b.occurrences) == ("open", 1)


@pytest.mark.parametrize(
    ("category", "team", "severity", "sla"),
    [
        ("sku_not_found", "catalog", "medium", 24 * 60),
        ("mapping_gap", "catalog", "medium", 24 * 60),
        ("credit_hold", "finance", "high", 4 * 60),
        ("insufficient_inventory", "operations", "high", 4 * 60),
        ("rate_limit", "integrations", "medium", 24 * 60),
        ("auth", "integrations", "high", 4 * 60),
        ("discount_anomaly", "finance", "medium", 24 * 60),
        ("duplicate", "operations", "low", 72 * 60),
        ("three_way_match", "operations", "medium", 24 * 60),
    ],
)
async def test_default_routing_by_category(
    container: Container, world: World, category: str, team: str, severity: str, sla: int
) -> None:
    case = await open_case(container, failure(world, "M1a", category=category))

    assert (case.team, case.severity, case.sla_minutes, case.rule_id) == (team, severity, sla, None)
    assert case.sla_due_at - case.created_at == timedelta(minutes=sla)


async def _rule(container: Container, **values: object) -> str:
    async with container.db.session(SYSTEM.scope) as s:
        rule = await routing.create_rule(s, SYSTEM, RoutingRuleCreate.model_validate(values))
        return rule.id


async def test_rules_first_by_priority_then_merchant_before_partner(container: Container, world: World) -> None:
    p1, m1a = world.ids["P1"], world.ids["M1a"]
    await _rule(container, name="partner sku", partner_id=p1, priority=10, match_category="sku_not_found", team="p-cat")
    merchant_rule = await _rule(
        container, name="merchant sku", merchant_id=m1a, priority=10, match_category="sku_not_found", team="m-cat"
    )
    await _rule(container, name="late", partner_id=p1, priority=50, team="catch-all", severity="critical")

    m1a_case = await open_case(container, failure(world, "M1a"))
    m1b_case = await open_case(container, failure(world, "M1b"))
    other = await open_case(container, failure(world, "M1a", category="credit_hold"))
    foreign = await open_case(container, failure(world, "M2a"))

    assert (m1a_case.team, m1a_case.rule_id) == ("m-cat", merchant_rule)
    assert m1b_case.team == "p-cat"
    assert (other.team, other.severity, other.sla_minutes) == ("catch-all", "critical", 60)
    assert (foreign.team, foreign.rule_id) == ("catalog", None)


async def test_rule_amount_flow_and_disabled(container: Container, world: World) -> None:
    p1 = world.ids["P1"]
    await _rule(container, name="big", partner_id=p1, priority=1, min_amount=1000, team="key-accounts", sla_minutes=30)
    await _rule(container, name="off", partner_id=p1, priority=0, enabled=False, team="nobody")
    await _rule(container, name="flow", partner_id=p1, priority=2, match_flow_id="flw_b2b", team="b2b")

    big = await open_case(container, failure(world, "M1a", cause="a", amount=1500.0))
    small = await open_case(container, failure(world, "M1a", cause="b", amount=999.99))
    unknown_amount = await open_case(container, failure(world, "M1a", cause="c", flow_id="flw_b2b"))

    assert (big.team, big.sla_minutes, big.severity) == ("key-accounts", 30, "medium")
    assert small.team == "catalog"
    assert unknown_amount.team == "b2b"


async def test_sla_warning_then_breach_escalates_once_per_level(container: Container, world: World) -> None:
    t0 = utcnow()
    case = await open_case(container, failure(world, "M1a"), now=t0)  # medium: 24 h
    assert (case.sla_state, case.sla_due_at) == ("ok", t0 + timedelta(hours=24))

    async with container.db.session(SYSTEM.scope) as s:
        early = await escalate_due(s, t0 + timedelta(hours=17))
        warn = await escalate_due(s, t0 + timedelta(hours=18))
        warn_again = await escalate_due(s, t0 + timedelta(hours=19))
    assert (early, warn, warn_again) == (
        {"warned": 0, "escalated": 0},
        {"warned": 1, "escalated": 0},
        {"warned": 0, "escalated": 0},
    )

    breach_at = t0 + timedelta(hours=24, minutes=1)
    async with container.db.session(SYSTEM.scope) as s:
        first = await escalate_due(s, breach_at)
    async with container.db.session(SYSTEM.scope) as s:
        again = await escalate_due(s, breach_at)
    assert (first, again) == ({"warned": 0, "escalated": 1}, {"warned": 0, "escalated": 0})

    [after] = await all_cases(container)
    assert (after.severity, after.escalation_level, after.sla_state, after.sla_minutes) == ("high", 1, "breached", 240)
    assert after.sla_due_at == breach_at + timedelta(hours=4)
    assert await audit_actions(container, case.id) == [
        "cases.case.open",
        "cases.case.sla_warning",
        "cases.case.escalate",
    ]

    async with container.db.session(SYSTEM.scope) as s:
        second = await escalate_due(s, breach_at + timedelta(hours=4, seconds=1))
    [final] = await all_cases(container)
    assert second == {"warned": 0, "escalated": 1}
    assert (final.severity, final.escalation_level, final.sla_minutes) == ("critical", 2, 60)


async def test_closed_cases_never_escalate(container: Container, world: World) -> None:
    from crossdock.cases import service

    t0 = utcnow()
    case = await open_case(container, failure(world, "M1a"), now=t0)
    async with container.db.session(SYSTEM.scope) as s:
        await service.ignore(s, SYSTEM, case.id, "known issue, fixed upstream")
        result = await escalate_due(s, t0 + timedelta(days=10))

    assert result == {"warned": 0, "escalated": 0}
    [after] = await all_cases(container)
    assert (after.state, after.severity, after.escalation_level) == ("ignored", "medium", 0)
    async with container.db.session(Scope.everything()) as s:
        kinds = (await s.scalars(select(CaseEvent.kind))).all()
    assert sorted(kinds) == ["ignore", "open"]
