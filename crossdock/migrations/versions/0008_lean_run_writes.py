"""engine: fewer index entries and cheaper compression per run

Measured on the benchmark (docs/performance.md, profile 4): PostgreSQL spent ~19% of its time
inserting index entries and ~12% compressing JSON with pglz.

- The journal's and the effect ledger's `partner_id`/`merchant_id` indexes go: both tables are only
  ever read by run (`run_id`) or idempotency key, with the tenant as an extra filter.
- `engine_runs` loses `ix_engine_runs_created_at` (run ids are ULIDs: the primary key is already in
  creation order, and listings page by id) and `ix_engine_runs_partner_id` (runs are listed by
  merchant or flow, or page through the primary key with the partner as a filter). A run's row is
  written three times on its way to `succeeded`, each time into every index (the status changes, so
  no write is a HOT update): two indexes fewer is six index entries fewer per run.
- `ix_engine_runs_parent_run_id` holds only sub-flow runs (`WHERE parent_run_id IS NOT NULL`).
- On PostgreSQL built with lz4, the JSON columns a run writes (its input, trigger, output and error,
  the journal's output and error, the ledger's result) are compressed with lz4 instead of pglz when
  they are large enough to be compressed (~2 KB). Existing values keep their compression.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROPPED = (
    ("engine_runs", "ix_engine_runs_created_at", "created_at"),
    ("engine_runs", "ix_engine_runs_partner_id", "partner_id"),
    ("engine_journal", "ix_engine_journal_partner_id", "partner_id"),
    ("engine_journal", "ix_engine_journal_merchant_id", "merchant_id"),
    ("engine_effects", "ix_engine_effects_partner_id", "partner_id"),
    ("engine_effects", "ix_engine_effects_merchant_id", "merchant_id"),
)
PARENT = "ix_engine_runs_parent_run_id"
COMPRESSED = {
    "engine_runs": ("input", "trigger", "output", "error"),
    "engine_journal": ("output", "error"),
    "engine_effects": ("result",),
}


def _compression(method: str) -> None:
    bind = op.get_bind()
    methods = bind.execute(sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"))
    if method not in (methods.scalar() or []):
        return  # a PostgreSQL built without lz4 keeps pglz
    for table, columns in COMPRESSED.items():
        for column in columns:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    for table, name, _column in DROPPED:
        op.drop_index(name, table_name=table)
    op.drop_index(PARENT, table_name="engine_runs")
    where = sa.text("parent_run_id IS NOT NULL")
    context = op.get_context()
    if context.dialect.name == "postgresql":
        _compression("lz4")
        with context.autocommit_block():
            op.create_index(
                PARENT, "engine_runs", ["parent_run_id"], postgresql_where=where, postgresql_concurrently=True
            )
        return
    op.create_index(PARENT, "engine_runs", ["parent_run_id"], sqlite_where=where)


def downgrade() -> None:
    op.drop_index(PARENT, table_name="engine_runs")
    op.create_index(PARENT, "engine_runs", ["parent_run_id"])
    for table, name, column in DROPPED:
        op.create_index(name, table, [column])
    if op.get_context().dialect.name == "postgresql":
        _compression("pglz")
