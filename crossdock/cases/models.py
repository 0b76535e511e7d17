"""Exception-desk tables: cases, their links to runs, timeline, routing rules, teams and the outbox.

Every table is `TenantOwned`. A case belongs to one merchant; routing rules and teams live at the
partner level (for all its merchants) or at the merchant level. `case_runs.run_id` is unique, so two
sweepers can never link one run twice; `cases.open_key` is unique, so two sweepers can never open two
cases for one trace key (it holds the trace key while the case is open and is NULL once it is closed).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crossdock.core.clock import utcnow
from crossdock.core.db import Base, JSONType, UTCDateTime
from crossdock.core.tenancy import TenantOwned


class CaseState(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    IGNORED = "ignored"


ACTIVE_STATES = (CaseState.OPEN, CaseState.IN_PROGRESS)


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class SlaState(StrEnum):
    OK = "ok"
    WARNING = "warning"
    BREACHED = "breached"


class Case(TenantOwned, Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_merchant_state", "merchant_id", "state"),
        Index("ix_cases_sla", "state", "sla_due_at"),
        Index("ix_cases_sla_warn", "state", "sla_state", "sla_warn_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    category: Mapped[str] = mapped_column(String(40), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    team: Mapped[str] = mapped_column(String(80), index=True)
    state: Mapped[str] = mapped_column(String(16), default=CaseState.OPEN)
    title: Mapped[str] = mapped_column(String(300))
    message: Mapped[str] = mapped_column(Text)
    trace_key: Mapped[str] = mapped_column(String(64), index=True)
    open_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    run_id: Mapped[str | None] = mapped_column(String(40))
    step_path: Mapped[str | None] = mapped_column(String(300))
    flow_id: Mapped[str | None] = mapped_column(String(40), index=True)
    amount: Mapped[float | None] = mapped_column(Float)
    payload: Mapped[Any] = mapped_column(JSONType, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    rule_id: Mapped[str | None] = mapped_column(String(40))
    assignee: Mapped[str | None] = mapped_column(String(200), index=True)
    sla_minutes: Mapped[int] = mapped_column(Integer)
    sla_warn_at: Mapped[datetime] = mapped_column(UTCDateTime)  # 75% of the SLA window
    sla_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sla_state: Mapped[str] = mapped_column(String(16), default=SlaState.OK)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    resolution: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CaseRun(TenantOwned, Base):
    """A run grouped into a case: one row per run, ever (`run_id` is the primary key)."""

    __tablename__ = "case_runs"
    __table_args__ = (Index("ix_case_runs_outcome", "outcome", "case_id"),)

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(40), index=True)
    step_path: Mapped[str | None] = mapped_column(String(300))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(16), default="failed")  # failed | retrying | succeeded
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CaseEvent(TenantOwned, Base):
    """The case timeline: opened, grouped, comment, assign, start, retry, replay, resolve, ignore, ..."""

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case", "case_id", "at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(30))
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(String(40))
    text: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RoutingRule(TenantOwned, Base):
    """Routes matching cases to a team; lower `priority` is tried first, merchant rules before partner."""

    __tablename__ = "case_routing_rules"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    priority: Mapped[int] = mapped_column(Integer, default=100)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    match_category: Mapped[str | None] = mapped_column(String(40))
    match_merchant_id: Mapped[str | None] = mapped_column(String(40))
    match_flow_id: Mapped[str | None] = mapped_column(String(40))
    min_amount: Mapped[float | None] = mapped_column(Float)
    team: Mapped[str] = mapped_column(String(80))
    severity: Mapped[str | None] = mapped_column(String(16))
    sla_minutes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CaseTeam(TenantOwned, Base):
    """A team's notification targets: email addresses (sent through an SMTP connection) and a chat connection."""

    __tablename__ = "case_teams"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(80), index=True)
    emails: Mapped[list[str]] = mapped_column(JSONType, default=list)
    email_connection_id: Mapped[str | None] = mapped_column(String(40))
    chat_connection_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CaseNotification(TenantOwned, Base):
    """The notification outbox: written in the case's transaction, delivered after commit, retried."""

    __tablename__ = "case_notifications"
    __table_args__ = (Index("ix_case_notifications_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(300), unique=True)
    case_id: Mapped[str] = mapped_column(String(40), index=True)
    reason: Mapped[str] = mapped_column(String(20))  # opened | breached
    channel: Mapped[str] = mapped_column(String(10))  # email | chat
    connection_id: Mapped[str] = mapped_column(String(40))
    recipients: Mapped[list[str]] = mapped_column(JSONType, default=list)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | delivered
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
