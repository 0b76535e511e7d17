"""engine: partial indexes on engine_runs, one per live state

The (status, ...) indexes held every run ever finished, and each write of a run on its way to
`succeeded` added an entry to all of them. The partial indexes hold only the runs in their state.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTIAL = (
    ("ix_engine_runs_queued", "available_at", "queued"),
    ("ix_engine_runs_waiting", "wake_at", "waiting"),
    ("ix_engine_runs_running", "lease_expires_at", "running"),
    ("ix_engine_runs_attention", "id", "needs_attention"),
)
FULL = (
    ("ix_engine_runs_claim", ["status", "available_at"]),
    ("ix_engine_runs_wake", ["status", "wake_at"]),
    ("ix_engine_runs_lease", ["status", "lease_expires_at"]),
    ("ix_engine_runs_merchant_status", ["merchant_id", "status"]),
)


def upgrade() -> None:
    for name, _columns in FULL:
        op.drop_index(name, table_name="engine_runs")
    context = op.get_context()
    if context.dialect.name == "postgresql":
        # CONCURRENTLY: building on a large engine_runs must not block the intake's inserts meanwhile.
        with context.autocommit_block():
            for name, column, status in PARTIAL:
                where = sa.text(f"status = '{status}'")
                op.create_index(name, "engine_runs", [column], postgresql_where=where, postgresql_concurrently=True)
        return
    for name, column, status in PARTIAL:
        op.create_index(name, "engine_runs", [column], sqlite_where=sa.text(f"status = '{status}'"))


def downgrade() -> None:
    for name, _column, _status in PARTIAL:
        op.drop_index(name, table_name="engine_runs")
    for name, columns in FULL:
        op.create_index(name, "engine_runs", columns)
