"""engine: a run's input and the journal's step outputs are stored as JSON text (`json`), not `jsonb`

The input of a run (a webhook's payload, ~2.3 KB for a Shopify order) is written once by the intake
and read back whole by the claim; a journal row's output and error are written once and read back
whole when a run resumes. None of them is queried inside the database. As `jsonb` PostgreSQL parsed
each into its binary form on the way in (~36 µs for an order on the benchmark's host) and printed
the input back to text on every claim (~18 µs with the lz4 decompression); as `json` it is checked
by the JSON lexer on the way in (~3 µs) and returned as stored (docs/performance.md, profile 15).
Key order and spacing are kept as sent rather than normalized, which nothing relies on. SQLite
stores JSON as text already: nothing changes there.

`engine_runs` and `engine_journal` are rewritten (ALTER COLUMN ... TYPE): on large tables the
upgrade takes a while and holds an exclusive lock on them; run it in a maintenance window and
restart the processes afterwards (docs/operations.md, upgrades).

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


COLUMNS = {"engine_runs": ("input",), "engine_journal": ("output", "error")}


def _retype(kind: str) -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    methods = op.get_bind().execute(
        sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
    )
    lz4 = "lz4" in (methods.scalar() or [])
    for table, columns in COLUMNS.items():
        changes = [f"ALTER COLUMN {c} TYPE {kind} USING {c}::{kind}" for c in columns]
        if lz4:  # the new columns keep 0008's lz4 compression where the server has it
            changes += [f"ALTER COLUMN {c} SET COMPRESSION lz4" for c in columns]
        op.execute(f"ALTER TABLE {table} {', '.join(changes)}")  # one rewrite per table


def upgrade() -> None:
    _retype("json")
    if op.get_context().dialect.name == "postgresql":
        # Keep the input out of line: lz4 gets an order's JSON text (~2.3 KB) to ~1.3 KB, which with
        # the default target (~2 KB) would stay in the row, and the claim's and the end's updates
        # would each copy it into a new row version and the WAL (+2.2 KB of WAL per order, measured).
        # Rows shorter than ~2 KB are not affected: PostgreSQL only toasts rows above that.
        op.execute("ALTER TABLE engine_runs SET (toast_tuple_target = 1024)")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE engine_runs RESET (toast_tuple_target)")
    _retype("jsonb")
