"""Many rows in one PostgreSQL statement whatever their number: a batch as a few parameters.

SQLAlchemy's executemany processes every column of every row in Python (bind processors, JSON
dumps, datetime conversion) and renders a multi-row VALUES list per batch size. The engine's group
commits (intake, step journal) instead bind one typed array per column (`insert_from_arrays`,
`array_params`), which asyncpg sends in binary and PostgreSQL unpacks with `unnest`: no parsing
but of the JSON values themselves. (A first version sent the batch as one JSON document; parsing
it into `jsonb` was a fifth of PostgreSQL's CPU in the worker's commits: docs/performance.md,
profile 15.) Small documents whose keys say which columns to set (the run updates of a commit) are
still read from JSON with `from_json`. Values keep the meaning SQLAlchemy gives them: a Python None
in a JSON column is stored as JSON null, as `JSON()` does; naive datetimes are taken as UTC, as
`UTCDateTime` does.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, Boolean, Column, Float, Integer, String, Table

from crossdock.core.clock import as_utc
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


def _array_type(column: Column[Any]) -> str:
    """The PostgreSQL array a column's values travel in (JSON travels as text, one document each)."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return "timestamptz[]"
    if isinstance(kind, Boolean):
        return "boolean[]"
    if isinstance(kind, BigInteger | Integer):
        return "bigint[]"
    if isinstance(kind, Float):
        return "double precision[]"
    return "text[]"  # String, and JSON as text


def _from_array(alias: str, column: Column[Any]) -> str:
    """SQL taking `column`'s value from the unnested array element `alias`."""
    if isinstance(column.type, JSONText):
        return f"CAST({alias} AS json)"
    if isinstance(column.type, JSON):
        return f"CAST({alias} AS jsonb)"
    return alias


def insert_from_arrays(table: Table, keys: tuple[str, ...], param: str, where: str = "") -> str:
    """`INSERT INTO table (keys) SELECT ... FROM unnest(<one array per column>)`, in row order.

    Each column's values are bound as one typed array, `:<param>_<column>` (`array_params` builds
    them); `where` may filter on the rows as `t.<column>`. Column names come from the table
    (`table.c[key]` rejects anything else); values are bound."""
    columns = [table.c[k] for k in keys]
    arrays = ", ".join(f"CAST(:{param}_{c.name} AS {_array_type(c)})" for c in columns)
    aliases = ", ".join(f'"{c.name}"' for c in columns)
    values = ", ".join(_from_array(f't."{c.name}"', c) for c in columns)
    return (
        f"INSERT INTO {table.name} ({', '.join(c.name for c in columns)}) SELECT {values} "  # noqa: S608
        f"FROM unnest({arrays}) WITH ORDINALITY AS t({aliases}, n) {where}ORDER BY t.n"
    )


def array_params(table: Table, keys: tuple[str, ...], param: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of `insert_from_arrays(table, keys, param)` for `rows` (dicts by column name):
    one list per column, in row order. JSON values become documents (a Python None is JSON null,
    as `JSON()` stores it); naive datetimes are taken as UTC, as `UTCDateTime` does."""
    params: dict[str, Any] = {}
    for key, kind in _plan(table, keys):
        if kind == _JSON:
            params[f"{param}_{key}"] = [dumps(row.get(key)) for row in rows]
        elif kind == _TIME:
            params[f"{param}_{key}"] = [_utc(row.get(key)) for row in rows]
        else:
            params[f"{param}_{key}"] = [row.get(key) for row in rows]
    return params


_PLAIN, _JSON, _TIME = 0, 1, 2


@functools.lru_cache(maxsize=64)
def _plan(table: Table, keys: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """How each column's values are converted (once per shape of batch, not per batch)."""
    kinds = []
    for key in keys:
        kind = table.c[key].type
        kinds.append((key, _JSON if isinstance(kind, JSON) else _TIME if isinstance(kind, UTCDateTime) else _PLAIN))
    return tuple(kinds)


def _utc(value: Any) -> Any:
    return value if value is None or value.tzinfo is not None else as_utc(value)


def _default(value: Any) -> str:
    return str(value)  # as the engine's JSON columns do (`core.db._json_dumps`)


def dumps(value: Any) -> str:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NAIVE_UTC).decode()
