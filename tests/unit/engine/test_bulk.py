"""`engine.bulk`: a batch of rows as one typed array per column, unnested by PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from crossdock.engine.bulk import array_params, insert_from_arrays
from crossdock.engine.journal import JOURNAL, RUNS


def test_one_typed_array_per_column_and_json_by_its_column_type() -> None:
    sql = insert_from_arrays(RUNS, ("id", "lease_epoch", "available_at", "trigger", "input"), "runs")
    assert sql.startswith("INSERT INTO engine_runs (id, lease_epoch, available_at, trigger, input) SELECT ")
    for array in (
        "CAST(:runs_id AS text[])",
        "CAST(:runs_lease_epoch AS bigint[])",
        "CAST(:runs_available_at AS timestamptz[])",
        "CAST(:runs_trigger AS text[])",
        "CAST(:runs_input AS text[])",
    ):
        assert array in sql
    # jsonb for the run's trigger, json (kept as text, migration 0009) for its input
    assert 'CAST(t."trigger" AS jsonb), CAST(t."input" AS json) FROM unnest(' in sql
    assert sql.endswith('WITH ORDINALITY AS t("id", "lease_epoch", "available_at", "trigger", "input", n) ORDER BY t.n')


def test_parameters_are_columns_in_row_order() -> None:
    at = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
    rows = [
        {"run_id": "run_1", "attempt": 1, "duration_ms": 1.5, "superseded": False, "output": {"b": 1, "a": None}},
        {"run_id": "run_2", "attempt": 2, "duration_ms": 0.25, "superseded": True, "output": None},
    ]
    keys = ("run_id", "attempt", "duration_ms", "superseded", "output", "started_at")
    rows = [{**r, "started_at": at.replace(tzinfo=None) if i else at} for i, r in enumerate(rows)]
    params = array_params(JOURNAL, keys, "journal", rows)
    assert params == {
        "journal_run_id": ["run_1", "run_2"],
        "journal_attempt": [1, 2],
        "journal_duration_ms": [1.5, 0.25],
        "journal_superseded": [False, True],
        # one JSON document per row, key order kept; a Python None is JSON null, as JSON() stores it
        "journal_output": ['{"b":1,"a":null}', "null"],
        # a naive datetime is UTC, as UTCDateTime takes it
        "journal_started_at": [at, at],
    }
    assert all(v.tzinfo is not None for v in params["journal_started_at"])
