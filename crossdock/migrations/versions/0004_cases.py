"""cases: the exception desk (cases, links to runs, timeline, routing rules, teams, notification outbox)

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import crossdock.core.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "case_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("actor_type", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=40), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("data", JSON, nullable=False),
        sa.Column("at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
    )
    op.create_index("ix_case_events_case", "case_events", ["case_id", "at"])
    op.create_index(op.f("ix_case_events_merchant_id"), "case_events", ["merchant_id"])
    op.create_index(op.f("ix_case_events_partner_id"), "case_events", ["partner_id"])

    op.create_table(
        "case_notifications",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("dedup_key", sa.String(length=300), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("recipients", JSON, nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_notifications")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_case_notifications_dedup_key")),
    )
    op.create_index(op.f("ix_case_notifications_case_id"), "case_notifications", ["case_id"])
    op.create_index("ix_case_notifications_due", "case_notifications", ["status", "next_attempt_at"])
    op.create_index(op.f("ix_case_notifications_merchant_id"), "case_notifications", ["merchant_id"])
    op.create_index(op.f("ix_case_notifications_partner_id"), "case_notifications", ["partner_id"])

    op.create_table(
        "case_routing_rules",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("match_category", sa.String(length=40), nullable=True),
        sa.Column("match_merchant_id", sa.String(length=40), nullable=True),
        sa.Column("match_flow_id", sa.String(length=40), nullable=True),
        sa.Column("min_amount", sa.Float(), nullable=True),
        sa.Column("team", sa.String(length=80), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("sla_minutes", sa.Integer(), nullable=True),
        sa.Column("created_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_routing_rules")),
    )
    op.create_index(op.f("ix_case_routing_rules_merchant_id"), "case_routing_rules", ["merchant_id"])
    op.create_index(op.f("ix_case_routing_rules_partner_id"), "case_routing_rules", ["partner_id"])

    op.create_table(
        "case_runs",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("step_path", sa.String(length=300), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("linked_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_case_runs")),
    )
    op.create_index(op.f("ix_case_runs_case_id"), "case_runs", ["case_id"])
    op.create_index(op.f("ix_case_runs_merchant_id"), "case_runs", ["merchant_id"])
    op.create_index("ix_case_runs_outcome", "case_runs", ["outcome", "case_id"])
    op.create_index(op.f("ix_case_runs_partner_id"), "case_runs", ["partner_id"])

    op.create_table(
        "case_teams",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("emails", JSON, nullable=False),
        sa.Column("email_connection_id", sa.String(length=40), nullable=True),
        sa.Column("chat_connection_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_teams")),
    )
    op.create_index(op.f("ix_case_teams_merchant_id"), "case_teams", ["merchant_id"])
    op.create_index(op.f("ix_case_teams_name"), "case_teams", ["name"])
    op.create_index(op.f("ix_case_teams_partner_id"), "case_teams", ["partner_id"])

    op.create_table(
        "cases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("team", sa.String(length=80), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("trace_key", sa.String(length=64), nullable=False),
        sa.Column("open_key", sa.String(length=64), nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("step_path", sa.String(length=300), nullable=True),
        sa.Column("flow_id", sa.String(length=40), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("payload", JSON, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("rule_id", sa.String(length=40), nullable=True),
        sa.Column("assignee", sa.String(length=200), nullable=True),
        sa.Column("sla_minutes", sa.Integer(), nullable=False),
        sa.Column("sla_warn_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sla_due_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sla_state", sa.String(length=16), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("resolved_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("open_key", name=op.f("uq_cases_open_key")),
    )
    op.create_index(op.f("ix_cases_assignee"), "cases", ["assignee"])
    op.create_index(op.f("ix_cases_category"), "cases", ["category"])
    op.create_index(op.f("ix_cases_created_at"), "cases", ["created_at"])
    op.create_index(op.f("ix_cases_flow_id"), "cases", ["flow_id"])
    op.create_index(op.f("ix_cases_merchant_id"), "cases", ["merchant_id"])
    op.create_index("ix_cases_merchant_state", "cases", ["merchant_id", "state"])
    op.create_index(op.f("ix_cases_partner_id"), "cases", ["partner_id"])
    op.create_index("ix_cases_sla", "cases", ["state", "sla_due_at"])
    op.create_index("ix_cases_sla_warn", "cases", ["state", "sla_state", "sla_warn_at"])
    op.create_index(op.f("ix_cases_team"), "cases", ["team"])
    op.create_index(op.f("ix_cases_trace_key"), "cases", ["trace_key"])


def downgrade() -> None:
    op.drop_table("cases")
    op.drop_table("case_teams")
    op.drop_table("case_runs")
    op.drop_table("case_routing_rules")
    op.drop_table("case_notifications")
    op.drop_table("case_events")
