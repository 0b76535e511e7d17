"""Many rows as one JSON document: PostgreSQL statements that take a batch as a single parameter.

SQLAlchemy's executemany processes every column of every row in Python (bind processors, JSON
dumps, datetime conversion) and renders a multi-row VALUES list per batch size. For the engine's
group commits (intake, step journal) the batch is instead dumped once with orjson and unpacked by
PostgreSQL with `jsonb_array_elements`; `from_json` gives the SQL that reads one column's value
back from an element, by the column's type. Values keep the meaning SQLAlchemy gives them: a
Python None in a JSON column is stored as JSON null, as `JSON()` does; datetimes are ISO 8601 with
their offset (naive ones are taken as UTC, as `UTCDateTime` does).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import BigInteger, Boolean, Column, Float, Integer, String, Table

from crossdock.core.db import JSONText, UTCDateTime


def from_json(source: str, column: Column[Any]) -> str:
    """SQL reading `column`'s value from the JSON object `source` (a key of the same name)."""
    key = f"'{column.name}'"
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return f"CAST({source}->>{key} AS timestamptz)"
    if isinstance(kind, Boolean):
        return f"CAST({source}->>{key} AS boolean)"
    if isinstance(kind, BigInteger | Integer):
        return f"CAST({source}->>{key} AS bigint)"
    if isinstance(kind, Float):
        return f"CAST({source}->>{key} AS double precision)"
    if isinstance(kind, String):
        return f"{source}->>{key}"
    return f"{source}->{key}"  # JSON


def insert_from_json(
    table: Table, keys: tuple[str, ...], param: str, where: str = "", *, texts: tuple[str, ...] = ()
) -> str:
    """`INSERT INTO table (keys) SELECT ... FROM` the JSON array bound as `:param`, in array order.

    `texts`: columns of JSON kept as text (`JSONText`, PostgreSQL `json`) that travel beside the
    array, each as a `text[]` parameter `:<param>_<column>` holding one JSON document per row
    (`json_texts`). Inside the array they would be parsed into `jsonb` with it and printed back to
    text for the `json` column: the cost the column type exists to avoid.

    Column names come from the table (`table.c[key]` rejects anything else); values are bound."""
    columns = [table.c[k] for k in keys]
    values = [from_json("t.e", c) for c in columns]
    for name in texts:
        column = table.c[name]
        if not isinstance(column.type, JSONText):
            raise ValueError(f"{table.name}.{name} is not a JSON text column")
        columns.append(column)
        values.append(f"CAST((CAST(:{param}_{name} AS text[]))[t.n] AS json)")
    return (
        f"INSERT INTO {table.name} ({', '.join(c.name for c in columns)}) SELECT {', '.join(values)} "  # noqa: S608
        f"FROM jsonb_array_elements(CAST(:{param} AS jsonb)) WITH ORDINALITY AS t(e, n) "
        f"{where}ORDER BY t.n"
    )


def json_texts(rows: list[dict[str, Any]], param: str, texts: tuple[str, ...]) -> dict[str, Any]:
    """The parameters of `insert_from_json(..., texts=texts)` for `rows`: the array without the
    text columns as `param`, and each text column's documents as `<param>_<column>`."""
    params: dict[str, Any] = {f"{param}_{name}": [dumps(row.get(name)) for row in rows] for name in texts}
    params[param] = dumps([{k: v for k, v in row.items() if k not in texts} for row in rows])
    return params


def _default(value: Any) -> str:
    return str(value)  # as the engine's JSON columns do (`core.db._json_dumps`)


def dumps(value: Any) -> str:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NAIVE_UTC).decode()
