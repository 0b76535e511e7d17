"""Routing: which team owns a case, at what severity and with what SLA. Rules first, then defaults.

Rules are tried in order of `priority` (lower first); at equal priority a merchant-level rule wins over
a partner-level one. A rule matches when every match field it sets equals the case's (and the case's
amount is at least `min_amount`). Without a matching rule the category decides the team, the flow's
requested severity (or the category's) the severity, and the severity the SLA. Teams and their
notification targets are managed here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.cases.models import CaseTeam, RoutingRule, Severity
from crossdock.cases.schemas import RoutingRuleCreate, RoutingRuleUpdate, TeamCreate
from crossdock.connections import service as connections
from crossdock.connectors.errors import FailureCategory as C
from crossdock.core.context import Actor
from crossdock.core.errors import Conflict, ValidationFailed
from crossdock.core.ids import new_id
from crossdock.core.pagination import paginate
from crossdock.core.repository import get_visible, snapshot
from crossdock.governance.audit import record
from crossdock.tenants import service as tenants

DEFAULT_TEAMS: dict[str, str] = {
    C.SKU_NOT_FOUND: "catalog",
    C.MAPPING_GAP: "catalog",
    C.CREDIT_HOLD: "finance",
    C.PRICE_MISMATCH: "finance",
    C.DISCOUNT_ANOMALY: "finance",
    C.INSUFFICIENT_INVENTORY: "operations",
    C.AUTH: "integrations",
    C.CONNECTION: "integrations",
    C.RATE_LIMIT: "integrations",
}
FALLBACK_TEAM = "operations"

DEFAULT_SEVERITY: dict[str, Severity] = {
    C.AUTH: Severity.HIGH,
    C.CONNECTION: Severity.HIGH,
    C.CREDIT_HOLD: Severity.HIGH,
    C.INSUFFICIENT_INVENTORY: Severity.HIGH,
    C.DUPLICATE: Severity.LOW,
}
FALLBACK_SEVERITY = Severity.MEDIUM

SLA_MINUTES: dict[str, int] = {
    Severity.CRITICAL: 60,
    Severity.HIGH: 4 * 60,
    Severity.MEDIUM: 24 * 60,
    Severity.LOW: 72 * 60,
}
SEVERITY_ORDER = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


def raised(severity: str) -> str:
    """One severity level up (critical stays critical)."""
    index = SEVERITY_ORDER.index(Severity(severity))
    return SEVERITY_ORDER[min(index + 1, len(SEVERITY_ORDER) - 1)]


@dataclass(frozen=True)
class Routing:
    team: str
    severity: str
    sla_minutes: int
    rule_id: str | None


def _matches(rule: RoutingRule, merchant_id: str, category: str, flow_id: str | None, amount: float | None) -> bool:
    if rule.match_category and rule.match_category != category:
        return False
    if rule.match_merchant_id and rule.match_merchant_id != merchant_id:
        return False
    if rule.match_flow_id and rule.match_flow_id != flow_id:
        return False
    return rule.min_amount is None or (amount is not None and amount >= rule.min_amount)


async def route(
    session: AsyncSession,
    *,
    partner_id: str | None,
    merchant_id: str,
    category: str,
    flow_id: str | None,
    amount: float | None,
    requested_severity: str | None = None,
) -> Routing:
    """The team, severity and SLA of a new case of this merchant."""
    rules = (
        await session.scalars(
            select(RoutingRule).where(
                RoutingRule.enabled.is_(True),
                or_(
                    RoutingRule.merchant_id == merchant_id,
                    (RoutingRule.partner_id == partner_id) & RoutingRule.merchant_id.is_(None),
                ),
            )
        )
    ).all()
    ordered = sorted(rules, key=lambda r: (r.priority, r.merchant_id is None, r.created_at, r.id))
    severity = requested_severity or DEFAULT_SEVERITY.get(category, FALLBACK_SEVERITY)
    for rule in ordered:
        if _matches(rule, merchant_id, category, flow_id, amount):
            severity = rule.severity or severity
            return Routing(rule.team, severity, rule.sla_minutes or SLA_MINUTES[severity], rule.id)
    team = DEFAULT_TEAMS.get(category, FALLBACK_TEAM)
    return Routing(team, severity, SLA_MINUTES[severity], None)


# -- routing rules ----------------------------------------------------------------------------

RULE_FIELDS = (
    "name",
    "priority",
    "enabled",
    "match_category",
    "match_merchant_id",
    "match_flow_id",
    "min_amount",
    "team",
    "severity",
    "sla_minutes",
)


async def _owner(session: AsyncSession, partner_id: str | None, merchant_id: str | None) -> tuple[str, str | None]:
    if merchant_id:
        merchant = await tenants.get_merchant(session, merchant_id)
        return str(merchant.partner_id), merchant.id
    partner = await tenants.get_partner(session, str(partner_id))
    return partner.id, None


async def create_rule(session: AsyncSession, actor: Actor, data: RoutingRuleCreate) -> RoutingRule:
    partner_id, merchant_id = await _owner(session, data.partner_id, data.merchant_id)
    if merchant_id and data.match_merchant_id and data.match_merchant_id != merchant_id:
        raise ValidationFailed("A merchant-level rule can only match its own merchant; drop match_merchant_id.")
    values = data.model_dump(include=set(RULE_FIELDS))
    rule = RoutingRule(id=new_id("rtr"), partner_id=partner_id, merchant_id=merchant_id, **values)
    session.add(rule)
    await session.flush()
    _audit_rule(session, actor, rule, "create", None)
    return rule


async def get_rule(session: AsyncSession, rule_id: str) -> RoutingRule:
    return await get_visible(session, RoutingRule, rule_id, "routing rule")


async def update_rule(session: AsyncSession, actor: Actor, rule_id: str, data: RoutingRuleUpdate) -> RoutingRule:
    rule = await get_rule(session, rule_id)
    before = snapshot(rule, RULE_FIELDS)
    for name, value in data.model_dump(exclude_unset=True).items():
        if name in ("name", "team", "priority", "enabled") and value is None:
            raise ValidationFailed(f"`{name}` cannot be null.")
        setattr(rule, name, value)
    await session.flush()
    _audit_rule(session, actor, rule, "update", before)
    return rule


async def delete_rule(session: AsyncSession, actor: Actor, rule_id: str) -> None:
    rule = await get_rule(session, rule_id)
    before = snapshot(rule, RULE_FIELDS)
    await session.delete(rule)
    await session.flush()
    record(
        session,
        actor,
        "cases.routing_rule.delete",
        target_type="routing_rule",
        target_id=rule.id,
        partner_id=rule.partner_id,
        merchant_id=rule.merchant_id,
        before=before,
    )


def _audit_rule(session: AsyncSession, actor: Actor, rule: RoutingRule, verb: str, before: Any) -> None:
    record(
        session,
        actor,
        f"cases.routing_rule.{verb}",
        target_type="routing_rule",
        target_id=rule.id,
        partner_id=rule.partner_id,
        merchant_id=rule.merchant_id,
        before=before,
        after=snapshot(rule, RULE_FIELDS),
    )


async def list_rules(
    session: AsyncSession, *, limit: int, cursor: str | None, merchant_id: str | None = None
) -> tuple[Sequence[RoutingRule], str | None]:
    stmt = select(RoutingRule)
    if merchant_id:
        stmt = stmt.where(RoutingRule.merchant_id == merchant_id)
    return await paginate(session, stmt, RoutingRule.id, limit=limit, cursor=cursor)


# -- teams ------------------------------------------------------------------------------------

TEAM_FIELDS = ("name", "emails", "email_connection_id", "chat_connection_id")


async def create_team(session: AsyncSession, actor: Actor, data: TeamCreate) -> CaseTeam:
    partner_id, merchant_id = await _owner(session, data.partner_id, data.merchant_id)
    for conn_id, system in ((data.email_connection_id, "smtp"), (data.chat_connection_id, "chat")):
        if conn_id:
            conn = await connections.get_connection(session, conn_id)
            if conn.system != system or conn.partner_id != partner_id:
                raise ValidationFailed(f"Connection {conn_id!r} is not a {system} connection of this partner.")
    same_level = CaseTeam.merchant_id == merchant_id if merchant_id else CaseTeam.merchant_id.is_(None)
    clash = await session.scalar(
        select(CaseTeam.id).where(CaseTeam.name == data.name, CaseTeam.partner_id == partner_id, same_level)
    )
    if clash:
        raise Conflict(f"Team {data.name!r} already exists at this level; update or delete it first.")
    team = CaseTeam(
        id=new_id("tem"), partner_id=partner_id, merchant_id=merchant_id, **data.model_dump(include=set(TEAM_FIELDS))
    )
    session.add(team)
    await session.flush()
    record(
        session,
        actor,
        "cases.team.create",
        target_type="case_team",
        target_id=team.id,
        partner_id=partner_id,
        merchant_id=merchant_id,
        after=snapshot(team, TEAM_FIELDS),
    )
    return team


async def delete_team(session: AsyncSession, actor: Actor, team_id: str) -> None:
    team = await get_visible(session, CaseTeam, team_id, "team")
    before = snapshot(team, TEAM_FIELDS)
    await session.delete(team)
    await session.flush()
    record(
        session,
        actor,
        "cases.team.delete",
        target_type="case_team",
        target_id=team.id,
        partner_id=team.partner_id,
        merchant_id=team.merchant_id,
        before=before,
    )


async def list_teams(session: AsyncSession, *, limit: int, cursor: str | None) -> tuple[Sequence[CaseTeam], str | None]:
    return await paginate(session, select(CaseTeam), CaseTeam.id, limit=limit, cursor=cursor)


async def team_for(
    session: AsyncSession, partner_id: str | None, merchant_id: str | None, name: str
) -> CaseTeam | None:
    """The team named `name` for this merchant: its own definition first, then the partner's."""
    rows = (
        await session.scalars(
            select(CaseTeam).where(
                CaseTeam.name == name,
                or_(
                    CaseTeam.merchant_id == merchant_id,
                    (CaseTeam.partner_id == partner_id) & CaseTeam.merchant_id.is_(None),
                ),
            )
        )
    ).all()
    return min(rows, key=lambda t: t.merchant_id is None, default=None)
