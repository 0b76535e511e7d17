"""engine: drop engine_events; a webhook's run is its stored event (payload in `input`, headers in `trigger`)

Nothing read engine_events: the run already held the payload as its input, so every webhook wrote it
twice. Since 0006 the intake writes only the run (one INSERT per group commit).

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import crossdock.core.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
INDEXED = ("merchant_id", "partner_id", "run_id", "trigger_id")


def upgrade() -> None:
    with op.batch_alter_table("engine_events", schema=None) as batch_op:
        for column in INDEXED:
            batch_op.drop_index(batch_op.f(f"ix_engine_events_{column}"))
    op.drop_table("engine_events")


def downgrade() -> None:
    op.create_table(
        "engine_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("trigger_id", sa.String(length=40), nullable=True),
        sa.Column("dedup_key", sa.String(length=300), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("headers", JSON, nullable=False),
        sa.Column("received_at", crossdock.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engine_events")),
    )
    with op.batch_alter_table("engine_events", schema=None) as batch_op:
        for column in INDEXED:
            batch_op.create_index(batch_op.f(f"ix_engine_events_{column}"), [column], unique=False)
