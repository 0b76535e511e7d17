"""Query languages of the NetSuite simulator, parsed by hand (never `eval`): record `q` filters and SuiteQL.

`q` (record collections):   field OP value [(AND|OR) field OP value ...], OP one of `Q_OPERATORS`,
                            values "double-quoted", numbers, true/false; EMPTY / EMPTY_NOT take none.
SuiteQL (a safe subset):    SELECT * | col[, col...] FROM table [WHERE cond] [ORDER BY col [ASC|DESC], ...]
                            cond: pred [AND|OR pred], NOT, parentheses; pred: col (= != <> < <= > >=) value,
                            col [NOT] LIKE 'pat%', col IS [NOT] NULL, col [NOT] IN (v, ...).
Anything else raises `QueryError`, which the simulator answers with a 400 and o:errorDetails.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*'|"(?:[^"\\]|\\.)*")
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    | (?P<op><=|>=|<>|!=|=|<|>|\(|\)|,|\*)
    )""",
    re.VERBOSE,
)


class QueryError(ValueError):
    """The query is outside the supported subset or malformed."""


@dataclass(frozen=True)
class Tok:
    kind: str
    text: str
    value: Any
    pos: int


def tokenize(text: str) -> list[Tok]:
    out: list[Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            raise QueryError(f"Unexpected character {text[pos:].lstrip()[:1]!r} at position {pos}")
        kind = match.lastgroup
        raw = match.group(kind)
        value: Any = raw
        if kind == "string":
            value = raw[1:-1].replace("''", "'") if raw[0] == "'" else raw[1:-1].replace('\\"', '"')
        elif kind == "number":
            value = Decimal(raw)
        out.append(Tok(kind, raw, value, match.start(kind)))
        pos = match.end()
    out.append(Tok("end", "", None, len(text)))
    return out


class _Cursor:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Tok:
        return self.tokens[self.i]

    def take(self) -> Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def word(self, *words: str) -> bool:
        """Consume the keyword if it is next (case-insensitive)."""
        if self.tok.kind == "name" and self.tok.text.upper() in words:
            self.i += 1
            return True
        return False

    def expect_word(self, word: str) -> None:
        if not self.word(word):
            raise QueryError(
                f"Expected {word} but found {self.tok.text or 'end of query'!r} at position {self.tok.pos}"
            )

    def expect_op(self, op: str) -> None:
        if self.tok.text != op:
            raise QueryError(
                f"Expected {op!r} but found {self.tok.text or 'end of query'!r} at position {self.tok.pos}"
            )
        self.i += 1

    def name(self) -> str:
        if self.tok.kind != "name":
            raise QueryError(
                f"Expected a field name but found {self.tok.text or 'end of query'!r} at position {self.tok.pos}"
            )
        return self.take().text


def _scalar(value: Any) -> Any:
    """Comparable form: numbers as Decimal, date-looking strings as datetimes, others unchanged."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    if isinstance(value, str):
        for fmt in ("%m/%d/%Y", "%Y-%m-%d"):
            try:
                return datetime.strptime(value, fmt)
            except ValueError:
                pass
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}T.*", value):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
            except ValueError:
                return value
        try:
            return Decimal(value)
        except InvalidOperation:
            return value
    return value


def _cmp(left: Any, right: Any) -> int | None:
    a, b = _scalar(left), _scalar(right)
    if (isinstance(a, datetime) and isinstance(b, datetime)) or type(a) is type(b):
        try:
            return (a > b) - (a < b)
        except TypeError:
            return None
    return None


# -- record collection `q` ------------------------------------------------------------------------
Q_OPERATORS = {
    "IS": lambda c: c == 0,
    "IS_NOT": lambda c: c != 0,
    "EQUAL": lambda c: c == 0,
    "ON": lambda c: c == 0,
    "GREATER": lambda c: c > 0,
    "AFTER": lambda c: c > 0,
    "GREATER_OR_EQUAL": lambda c: c >= 0,
    "ON_OR_AFTER": lambda c: c >= 0,
    "LESS": lambda c: c < 0,
    "BEFORE": lambda c: c < 0,
    "LESS_OR_EQUAL": lambda c: c <= 0,
    "ON_OR_BEFORE": lambda c: c <= 0,
}


def parse_q(text: str, fields: set[str]) -> Predicate:
    """A predicate over records for the `q` query parameter of record collections."""
    cur = _Cursor(text)
    clauses: list[Predicate] = [_q_clause(cur, fields)]
    joins: list[str] = []
    while cur.tok.kind != "end":
        if cur.word("AND"):
            joins.append("AND")
        elif cur.word("OR"):
            joins.append("OR")
        else:
            raise QueryError(f"Expected AND or OR but found {cur.tok.text!r} at position {cur.tok.pos}")
        clauses.append(_q_clause(cur, fields))
    # AND binds tighter than OR: split into OR-groups of AND-ed clauses
    groups: list[list[Predicate]] = [[clauses[0]]]
    for join, clause in zip(joins, clauses[1:], strict=True):
        if join == "AND":
            groups[-1].append(clause)
        else:
            groups.append([clause])
    return lambda row: any(all(p(row) for p in group) for group in groups)


def _q_clause(cur: _Cursor, fields: set[str]) -> Predicate:
    field = cur.name()
    if field not in fields:
        raise QueryError(f"Invalid search query: unknown field {field!r}")
    if cur.tok.kind != "name":
        raise QueryError(f"Expected an operator after {field!r} at position {cur.tok.pos}")
    op = cur.take().text.upper()
    if op in ("EMPTY", "EMPTY_NOT"):
        empty = op == "EMPTY"
        return lambda row: (_plain(row.get(field)) in (None, "")) is empty
    if op in ("START_WITH", "START_WITH_NOT", "CONTAIN", "CONTAIN_NOT", "END_WITH"):
        needle = str(_q_value(cur))
        test = {"START": str.startswith, "CONTAIN": str.__contains__, "END": str.endswith}[op.split("_")[0]]
        negate = op.endswith("_NOT")
        return lambda row: test(str(_plain(row.get(field)) or ""), needle) is not negate
    if op not in Q_OPERATORS:
        raise QueryError(f"Invalid search query: unsupported operator {op!r}")
    value, accept = _q_value(cur), Q_OPERATORS[op]

    def pred(row: Row) -> bool:
        c = _cmp(_plain(row.get(field)), value)
        return c is not None and bool(accept(c))

    return pred


def _q_value(cur: _Cursor) -> Any:
    tok = cur.take()
    if tok.kind in ("string", "number"):
        return tok.value
    if tok.kind == "name" and tok.text.lower() in ("true", "false"):
        return tok.text.lower() == "true"
    raise QueryError(f"Expected a value but found {tok.text or 'end of query'!r} at position {tok.pos}")


def _plain(value: Any) -> Any:
    """Record references (`{"id": ...}`) compare by id."""
    if isinstance(value, dict):
        return value.get("id")
    return value


# -- SuiteQL ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SuiteQL:
    table: str
    columns: list[str] | None  # None = *
    where: Predicate | None
    order: list[tuple[str, bool]]  # (column, descending)


_CMP = {"=": lambda c: c == 0, "!=": lambda c: c != 0, "<>": lambda c: c != 0, "<": lambda c: c < 0}
_CMP |= {"<=": lambda c: c <= 0, ">": lambda c: c > 0, ">=": lambda c: c >= 0}


def parse_suiteql(text: str, tables: Mapping[str, set[str]]) -> SuiteQL:
    cur = _Cursor(text)
    cur.expect_word("SELECT")
    columns: list[str] | None
    if cur.tok.text == "*":
        cur.take()
        columns = None
    else:
        columns = [cur.name().lower()]
        while cur.tok.text == ",":
            cur.take()
            columns.append(cur.name().lower())
    cur.expect_word("FROM")
    table = cur.name().lower()
    if table not in tables:
        raise QueryError(f"Invalid or unsupported search: unknown record type {table!r}")
    known = tables[table]
    for column in columns or []:
        if column not in known:
            raise QueryError(f"Field '{column}' for record '{table}' was not found.")
    where = None
    if cur.word("WHERE"):
        where = _or(cur, known)
    order: list[tuple[str, bool]] = []
    if cur.word("ORDER"):
        cur.expect_word("BY")
        while True:
            column = cur.name().lower()
            if column not in known:
                raise QueryError(f"Field '{column}' for record '{table}' was not found.")
            descending = cur.word("DESC")
            if not descending:
                cur.word("ASC")
            order.append((column, descending))
            if cur.tok.text != ",":
                break
            cur.take()
    if cur.tok.kind != "end":
        raise QueryError(f"Unsupported or invalid SuiteQL near {cur.tok.text!r} at position {cur.tok.pos}")
    return SuiteQL(table, columns, where, order)


def _or(cur: _Cursor, known: set[str]) -> Predicate:
    parts = [_and(cur, known)]
    while cur.word("OR"):
        parts.append(_and(cur, known))
    return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))


def _and(cur: _Cursor, known: set[str]) -> Predicate:
    parts = [_not(cur, known)]
    while cur.word("AND"):
        parts.append(_not(cur, known))
    return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))


def _not(cur: _Cursor, known: set[str]) -> Predicate:
    if cur.word("NOT"):
        inner = _not(cur, known)
        return lambda row: not inner(row)
    if cur.tok.text == "(":
        cur.take()
        inner = _or(cur, known)
        cur.expect_op(")")
        return inner
    return _predicate(cur, known)


def _literal(cur: _Cursor) -> Any:
    tok = cur.take()
    if tok.kind == "string" and tok.text.startswith("'"):
        return tok.value
    if tok.kind == "number":
        return tok.value
    raise QueryError(f"Expected a literal but found {tok.text or 'end of query'!r} at position {tok.pos}")


def _predicate(cur: _Cursor, known: set[str]) -> Predicate:
    column = cur.name().lower()
    if column not in known:
        raise QueryError(f"Field '{column}' was not found.")
    if cur.word("IS"):
        negate = cur.word("NOT")
        cur.expect_word("NULL")
        return lambda row: (row.get(column) is None) is not negate
    negate = cur.word("NOT")
    if cur.word("LIKE"):
        pattern = _literal(cur)
        regex = re.compile(
            "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in str(pattern)), re.S
        )
        return lambda row: (row.get(column) is not None and bool(regex.fullmatch(str(row[column])))) is not negate
    if cur.word("IN"):
        cur.expect_op("(")
        values = [_literal(cur)]
        while cur.tok.text == ",":
            cur.take()
            values.append(_literal(cur))
        cur.expect_op(")")
        return lambda row: any(_cmp(row.get(column), v) == 0 for v in values) is not negate
    if negate:
        raise QueryError(f"Expected LIKE or IN after NOT at position {cur.tok.pos}")
    op = cur.take()
    if op.text not in _CMP:
        raise QueryError(f"Unsupported or invalid SuiteQL operator {op.text or 'end of query'!r} at position {op.pos}")
    value, accept = _literal(cur), _CMP[op.text]

    def pred(row: Row) -> bool:
        c = _cmp(row.get(column), value)
        return c is not None and bool(accept(c))

    return pred


def sort_rows(rows: list[dict[str, Any]], order: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    for column, descending in reversed(order):
        rows = sorted(rows, key=lambda r: (r.get(column) is None, _sort_value(r.get(column))), reverse=descending)
    return rows


def _sort_value(value: Any) -> tuple[int, Any]:
    scalar = _scalar(value)
    if isinstance(scalar, Decimal):
        return (0, scalar)
    if isinstance(scalar, datetime):
        return (1, scalar)
    return (2, str(value) if value is not None else "")
