"""flows: template instances of merchants (template version, overrides, bindings, engine flow)

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import crossdock.core.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "flow_instances",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("template", sa.String(length=80), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("overrides", JSON, nullable=False),
        sa.Column("bindings", JSON, nullable=False),
        sa.Column("engine_flow_id", sa.String(length=40), nullable=False),
        sa.Column("engine_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_instances")),
        sa.UniqueConstraint("merchant_id", "key", name="uq_flow_instances_merchant_key"),
    )
    op.create_index(op.f("ix_flow_instances_template"), "flow_instances", ["template"])
    op.create_index(op.f("ix_flow_instances_engine_flow_id"), "flow_instances", ["engine_flow_id"])
    op.create_index(op.f("ix_flow_instances_partner_id"), "flow_instances", ["partner_id"])
    op.create_index(op.f("ix_flow_instances_merchant_id"), "flow_instances", ["merchant_id"])


def downgrade() -> None:
    op.drop_table("flow_instances")
