"""Permissions (`domain.action`) and the built-in roles that bundle them at a tenant level."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Permission(StrEnum):
    PARTNERS_READ = "partners.read"
    PARTNERS_MANAGE = "partners.manage"
    MERCHANTS_READ = "merchants.read"
    MERCHANTS_MANAGE = "merchants.manage"
    PRINCIPALS_READ = "principals.read"  # users and service accounts
    PRINCIPALS_MANAGE = "principals.manage"
    TOKENS_READ = "tokens.read"
    TOKENS_MANAGE = "tokens.manage"
    ROLES_READ = "roles.read"
    ROLES_MANAGE = "roles.manage"
    AUDIT_READ = "audit.read"
    FLOWS_READ = "flows.read"
    FLOWS_MANAGE = "flows.manage"
    FLOWS_PUBLISH = "flows.publish"
    RUNS_READ = "runs.read"
    RUNS_OPERATE = "runs.operate"  # start, cancel, replay, resolve waits
    APPROVALS_DECIDE = "approvals.decide"
    CONNECTIONS_READ = "connections.read"
    CONNECTIONS_MANAGE = "connections.manage"
    CASES_READ = "cases.read"
    CASES_OPERATE = "cases.operate"


class Level(StrEnum):
    PLATFORM = "platform"
    PARTNER = "partner"
    MERCHANT = "merchant"


P = Permission
READ_ALL = frozenset(p for p in Permission if p.value.endswith(".read"))
ALL = frozenset(Permission)


@dataclass(frozen=True)
class Role:
    name: str
    level: Level
    permissions: frozenset[Permission]
    description: str


ROLES: dict[str, Role] = {
    r.name: r
    for r in [
        Role("platform_admin", Level.PLATFORM, ALL, "Runs the Crossdock installation; every permission everywhere."),
        Role("partner_admin", Level.PARTNER, ALL, "Owns a partner: brand, merchants, people, flows, connections."),
        Role(
            "partner_operator",
            Level.PARTNER,
            READ_ALL | {P.RUNS_OPERATE, P.CASES_OPERATE, P.APPROVALS_DECIDE},
            "Works the exception desk and operates runs for the partner's merchants.",
        ),
        Role(
            "merchant_admin",
            Level.MERCHANT,
            ALL - {P.PARTNERS_MANAGE, P.PARTNERS_READ},
            "Administers one merchant: people, connections, flows, runs and cases.",
        ),
        Role(
            "merchant_approver",
            Level.MERCHANT,
            (READ_ALL - {P.PARTNERS_READ}) | {P.APPROVALS_DECIDE},
            "Reads everything of the merchant and decides approvals.",
        ),
        Role("merchant_viewer", Level.MERCHANT, READ_ALL - {P.PARTNERS_READ}, "Reads dashboards, runs and cases."),
    ]
}
