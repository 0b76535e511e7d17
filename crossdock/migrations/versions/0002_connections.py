"""connections: merchants' accounts in external systems, secrets encrypted

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import crossdock.core.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("environment", sa.String(length=20), nullable=False),
        sa.Column("system", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("secrets_ciphertext", sa.Text(), nullable=False),
        sa.Column("secret_fields", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_tested_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_test", JSON, nullable=True),
        sa.Column("created_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connections")),
        sa.UniqueConstraint("merchant_id", "environment", "name", name="uq_connections_name"),
    )
    op.create_index(op.f("ix_connections_system"), "connections", ["system"])
    op.create_index(op.f("ix_connections_partner_id"), "connections", ["partner_id"])
    op.create_index(op.f("ix_connections_merchant_id"), "connections", ["merchant_id"])


def downgrade() -> None:
    op.drop_table("connections")
