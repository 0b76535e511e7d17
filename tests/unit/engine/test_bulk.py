"""`engine.bulk`: JSON text columns travel beside the batch document, one text per row."""

from __future__ import annotations

import orjson
import pytest

from crossdock.engine.bulk import insert_from_json, json_texts
from crossdock.engine.journal import RUNS


def test_text_columns_are_a_text_array_beside_the_document() -> None:
    sql = insert_from_json(RUNS, ("id", "trigger"), "rows", texts=("input",))
    assert sql.startswith("INSERT INTO engine_runs (id, trigger, input) SELECT ")
    assert "CAST((CAST(:rows_input AS text[]))[t.n] AS json)" in sql
    rows = [
        {"id": "run_1", "trigger": {"k": 1}, "input": {"b": 1, "a": None}},
        {"id": "run_2", "trigger": {}, "input": None},
    ]
    params = json_texts(rows, "rows", ("input",))
    assert orjson.loads(params["rows"]) == [{"id": "run_1", "trigger": {"k": 1}}, {"id": "run_2", "trigger": {}}]
    # one JSON document per row, in row order; a Python None is JSON null, as in the document
    assert params["rows_input"] == ['{"b":1,"a":null}', "null"]


def test_only_json_text_columns_can_travel_as_text() -> None:
    with pytest.raises(ValueError, match=r"engine_runs\.trigger is not a JSON text column"):
        insert_from_json(RUNS, ("id",), "rows", texts=("trigger",))
