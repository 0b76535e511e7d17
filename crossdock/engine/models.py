"""Engine tables: flows and immutable versions, triggers, runs (a webhook's run is its stored event),
the step journal, waits, the effect ledger, per-merchant fairness state and per-account rate budgets.

Everything that belongs to a merchant is `TenantOwned`. The worker's hot path reads and writes
these tables with Core statements (see `journal.py`, `worker.py`), always fenced by `lease_epoch`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    literal,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from crossdock.core.clock import utcnow
from crossdock.core.db import Base, JSONText, JSONType, UTCDateTime
from crossdock.core.tenancy import TenantOwned


class VersionStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    RETIRED = "retired"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    NEEDS_ATTENTION = "needs_attention"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.NEEDS_ATTENTION, RunStatus.CANCELLED})


class WaitStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class Flow(TenantOwned, Base):
    __tablename__ = "engine_flows"
    __table_args__ = (UniqueConstraint("merchant_id", "key", name="uq_engine_flows_merchant_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    published_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class FlowVersion(TenantOwned, Base):
    """An immutable definition. Runs pin the version they started on."""

    __tablename__ = "engine_flow_versions"
    __table_args__ = (UniqueConstraint("flow_id", "number", name="uq_engine_flow_versions_flow_number"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(40), ForeignKey("engine_flows.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=VersionStatus.DRAFT)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    checksum: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Trigger(TenantOwned, Base):
    """A trigger of a flow; its id is the webhook endpoint id. Stable across versions (by name)."""

    __tablename__ = "engine_triggers"
    __table_args__ = (
        UniqueConstraint("flow_id", "name", name="uq_engine_triggers_flow_name"),
        Index("ix_engine_triggers_due", "kind", "enabled", "next_fire_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(40), ForeignKey("engine_flows.id"), index=True)
    version_id: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    event_name: Mapped[str | None] = mapped_column(String(120), index=True)
    next_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cursor: Mapped[Any] = mapped_column(JSONType, nullable=True)
    cursor_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def in_state(status: str) -> ColumnElement[bool]:
    """`engine_runs.status = '<status>'` with the value inline, so PostgreSQL's generic plans of
    prepared statements can still use the partial index of that state (a bind parameter hides it)."""
    return Run.__table__.c.status == literal(status, literal_execute=True)


def unlocked_runs(*where: ColumnElement[bool]) -> ColumnElement[bool]:
    """`engine_runs.id IN (runs matching where, FOR UPDATE SKIP LOCKED)`, for sweeps over many runs
    (lease heartbeat, reaper): a sweep that waited on the rows a group commit holds, in another
    order, could deadlock with it (PostgreSQL then stalls both for `deadlock_timeout`). A run being
    committed is skipped; the commit extends or ends its lease itself. SQLite has one writer anyway."""
    table = Run.__table__
    return table.c.id.in_(select(table.c.id).where(*where).with_for_update(skip_locked=True))


def _in_state(name: str, column: str, status: str) -> Index:
    where = text(f"status = '{status}'")
    return Index(name, column, postgresql_where=where, sqlite_where=where)


class Run(TenantOwned, Base):
    __tablename__ = "engine_runs"
    # Partial indexes: each holds only the runs in one state (a handful), not every finished run, so
    # a run's writes on its way to `succeeded` touch fewer indexes and the claim scans stay small.
    __table_args__ = (
        _in_state("ix_engine_runs_queued", "available_at", "queued"),  # claims, queue depth
        _in_state("ix_engine_runs_waiting", "wake_at", "waiting"),  # timers and wait expiry
        _in_state("ix_engine_runs_running", "lease_expires_at", "running"),  # reaper, in-flight caps
        _in_state("ix_engine_runs_attention", "id", "needs_attention"),  # the exception desk's sweep
        Index(  # only sub-flow runs have a parent
            "ix_engine_runs_parent_run_id",
            "parent_run_id",
            postgresql_where=text("parent_run_id IS NOT NULL"),
            sqlite_where=text("parent_run_id IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # a ULID: in creation order
    # Listed by merchant or flow, or by id with the partner as a filter: no partner index (0008).
    partner_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    flow_id: Mapped[str] = mapped_column(String(40), index=True)
    version_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.QUEUED)
    trigger: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    input: Mapped[Any] = mapped_column(JSONText, nullable=True)  # `json`: stored and returned as sent (0009)
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    dedup_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    parent_run_id: Mapped[str | None] = mapped_column(String(40))
    parent_step_path: Mapped[str | None] = mapped_column(String(300))
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    wake_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    claims: Mapped[int] = mapped_column(Integer, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    replays: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # order by id instead
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JournalEntry(TenantOwned, Base):
    """One attempt of one step: (run, step path, attempt) is unique; superseded rows stay for history."""

    __tablename__ = "engine_journal"
    __table_args__ = (
        UniqueConstraint("run_id", "step_path", "attempt", name="uq_engine_journal_run_step_attempt"),
        Index("ix_engine_journal_run_seq", "run_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    # Read by run (with the tenant as an extra filter), never by tenant alone: no tenant indexes,
    # which would cost two index entries per journalled step (migration 0008).
    partner_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    merchant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    run_id: Mapped[str] = mapped_column(String(40))
    step_path: Mapped[str] = mapped_column(String(300))
    step_type: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # succeeded | failed
    # `json`: written once, read back whole (0009)
    output: Mapped[Any] = mapped_column(JSONText, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float] = mapped_column(Float)
    lease_epoch: Mapped[int] = mapped_column(BigInteger)
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)


class Effect(TenantOwned, Base):
    """The effect ledger: an external effect keyed by its idempotency key happened (once)."""

    __tablename__ = "engine_effects"

    idempotency_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    partner_id: Mapped[str | None] = mapped_column(String(40), nullable=True)  # no tenant indexes (0008)
    merchant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    run_id: Mapped[str] = mapped_column(String(40))  # read by key only: no run index (0010)
    step_path: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(120))
    result: Mapped[Any] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Wait(TenantOwned, Base):
    """A durable wait (timer, event, approval, sub-flow): holds no task or connection."""

    __tablename__ = "engine_waits"
    __table_args__ = (
        UniqueConstraint("run_id", "step_path", "generation", name="uq_engine_waits_run_step_gen"),
        Index("ix_engine_waits_key", "merchant_id", "wait_key", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(40), index=True)
    step_path: Mapped[str] = mapped_column(String(300))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(20))  # timer | event | approval | subflow
    wait_key: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=WaitStatus.OPEN)
    prompt: Mapped[str | None] = mapped_column(Text)
    approvers: Mapped[list[str]] = mapped_column(JSONType, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[Any] = mapped_column(JSONType, nullable=True)
    resolve_key: Mapped[str | None] = mapped_column(String(200))
    resolved_by: Mapped[str | None] = mapped_column(String(40))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MerchantQueue(Base):
    """Per-merchant fairness state shared by all workers: when it was last served, its cap."""

    __tablename__ = "engine_merchant_queues"

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_served_at: Mapped[float] = mapped_column(Float, default=0.0)
    max_in_flight: Mapped[int | None] = mapped_column(Integer)


class RateBucket(Base):
    """A token bucket per connected account: `rate` tokens/s, at most `burst` saved up."""

    __tablename__ = "engine_rate_buckets"

    account: Mapped[str] = mapped_column(String(120), primary_key=True)
    rate: Mapped[float] = mapped_column(Float)
    burst: Mapped[float] = mapped_column(Float)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
