"""Tenant scoping by construction: every ORM query on a tenant-owned table is filtered to a scope.

Tenancy is a path `platform / partner / merchant`. Each tenant-owned row carries the path keys
`partner_id` and `merchant_id` (NULL above its level). A `Scope` is the set of subtrees a principal
may act in. The session hooks below add the scope's filter to every ORM SELECT, UPDATE and DELETE
of a `TenantOwned` model, and refuse to flush a row outside the scope, so a forgotten filter cannot
leak data. Rows outside the scope simply do not exist for the caller: the API answers 404.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, String, event, false, or_, true
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, with_loader_criteria

from crossdock.core.errors import CrossdockError, ErrorCode


class ScopeViolation(CrossdockError):
    code = ErrorCode.NOT_FOUND


class MissingScope(CrossdockError):
    code = ErrorCode.INTERNAL


@dataclass(frozen=True)
class Scope:
    """The subtrees a principal may act in: everything (platform) or some partners and merchants."""

    platform: bool = False
    partner_ids: frozenset[str] = field(default_factory=frozenset)
    merchant_ids: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def everything(cls) -> Scope:
        return cls(platform=True)

    @classmethod
    def nothing(cls) -> Scope:
        return cls()

    @classmethod
    def of_partner(cls, partner_id: str) -> Scope:
        return cls(partner_ids=frozenset({partner_id}))

    @classmethod
    def of_merchant(cls, merchant_id: str) -> Scope:
        return cls(merchant_ids=frozenset({merchant_id}))

    def union(self, other: Scope) -> Scope:
        return Scope(
            platform=self.platform or other.platform,
            partner_ids=self.partner_ids | other.partner_ids,
            merchant_ids=self.merchant_ids | other.merchant_ids,
        )

    @property
    def empty(self) -> bool:
        return not (self.platform or self.partner_ids or self.merchant_ids)

    def allows(self, partner_id: str | None, merchant_id: str | None) -> bool:
        """Whether a row with these path keys lies inside the scope."""
        if self.platform:
            return True
        if partner_id is not None and partner_id in self.partner_ids:
            return True
        return merchant_id is not None and merchant_id in self.merchant_ids

    def clause(self, partner_col: Any, merchant_col: Any) -> ColumnElement[bool]:
        if self.platform:
            return true()
        parts: list[ColumnElement[bool]] = []
        if self.partner_ids:
            parts.append(partner_col.in_(sorted(self.partner_ids)))
        if self.merchant_ids:
            parts.append(merchant_col.in_(sorted(self.merchant_ids)))
        return or_(*parts) if parts else false()


class TenantOwned:
    """Mixin for every table whose rows belong to a tenant; adds the path keys."""

    partner_id: Mapped[str | None] = mapped_column(String(40), index=True, nullable=True)
    merchant_id: Mapped[str | None] = mapped_column(String(40), index=True, nullable=True)


UNSCOPED = "crossdock_unscoped"


def session_scope(session: Session) -> Scope:
    scope = session.info.get("scope")
    if not isinstance(scope, Scope):
        raise MissingScope("Internal error: a tenant-owned table was queried without a scope.")
    return scope


@event.listens_for(Session, "do_orm_execute")
def _scope_orm_statements(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get(UNSCOPED) or state.is_column_load or state.is_relationship_load:
        return
    scope = session_scope(state.session)
    if scope.platform:
        return
    partners = tuple(sorted(scope.partner_ids))
    merchants = tuple(sorted(scope.merchant_ids))
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantOwned,
            lambda cls: or_(
                cls.partner_id.in_(partners),
                cls.merchant_id.in_(merchants),
            ),
            include_aliases=True,
        )
    )


@event.listens_for(Session, "before_flush")
def _check_rows_in_scope(session: Session, _ctx: Any, _instances: Any) -> None:
    touched = [o for o in (*session.new, *session.dirty, *session.deleted) if isinstance(o, TenantOwned)]
    if not touched:
        return
    scope = session_scope(session)
    for obj in touched:
        if not scope.allows(obj.partner_id, obj.merchant_id):
            raise ScopeViolation(f"{type(obj).__name__} lies outside your scope.", details={"type": type(obj).__name__})
