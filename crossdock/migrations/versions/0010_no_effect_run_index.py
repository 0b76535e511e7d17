"""engine: the effect ledger loses its `run_id` index

The ledger is only ever read by its idempotency key (the primary key): an action asks whether its
effect happened already. Nothing reads it by run, so `ix_engine_effects_run_id` cost one index
entry per external effect (51 B of index and its WAL per order on the benchmark) for no query
(docs/performance.md, profile 15). A purge of the ledger by run, should one come, brings it back.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_engine_effects_run_id"


def upgrade() -> None:
    op.drop_index(INDEX, table_name="engine_effects")


def downgrade() -> None:
    op.create_index(INDEX, "engine_effects", ["run_id"])
