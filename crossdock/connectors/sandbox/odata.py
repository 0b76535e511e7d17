"""A small OData v4 `$filter` parser and evaluator for the Business Central simulator (never `eval`).

Supports `eq ne gt ge lt le`, `and or not`, parentheses, string/number/bool/null/GUID/date-time
literals and the `contains`, `startswith`, `endswith`, `tolower`, `toupper` functions, which is the
subset integrations use against BC's API v2.0. Parsing is a tiny tokenizer plus recursive descent:

    expr       := or_expr
    or_expr    := and_expr ('or' and_expr)*
    and_expr   := not_expr ('and' not_expr)*
    not_expr   := 'not' not_expr | comparison
    comparison := operand (cmp_op operand)?
    operand    := '(' expr ')' | function '(' expr (',' expr)* ')' | literal | member
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
FUNCTIONS = {"contains": 2, "startswith": 2, "endswith": 2, "tolower": 1, "toupper": 1}
_KEYWORDS = COMPARISONS | {"and", "or", "not", "true", "false", "null"}

_TOKEN_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("ws", re.compile(r"\s+")),
    ("string", re.compile(r"'(?:[^']|'')*'")),
    ("guid", re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![\w-])")),
    (
        "datetime",
        re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?(?![\w:.-])"),
    ),
    ("number", re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])")),
    ("name", re.compile(r"[A-Za-z_][A-Za-z0-9_/]*")),
    ("punct", re.compile(r"[(),]")),
]


class ODataFilterError(ValueError):
    """The `$filter` text is not valid, or cannot be applied to an entity; `position` is 0-based."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message if position is None else f"{message} at position {position}")
        self.position = position


@dataclass(frozen=True)
class Token:
    kind: str  # string | guid | datetime | number | name | keyword | punct | end
    text: str
    pos: int


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Member:
    name: str


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Logical:
    op: str  # and | or
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


Node = Literal | Member | Compare | Logical | Not | Call


def tokenize(text: str) -> list[Token]:
    """Split filter text into tokens; raises `ODataFilterError` on a character it cannot read."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        for kind, pattern in _TOKEN_PATTERNS:
            match = pattern.match(text, pos)
            if match is None:
                continue
            word = match.group(0)
            if kind == "name" and word in _KEYWORDS:
                kind = "keyword"
            if kind != "ws":
                tokens.append(Token(kind, word, pos))
            pos = match.end()
            break
        else:
            if text[pos] == "'":
                raise ODataFilterError("Unterminated string literal", pos)
            raise ODataFilterError(f"Syntax error: unexpected character {text[pos]!r}", pos)
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        if self.current.text != text:
            found = self.current.text or "end of expression"
            raise ODataFilterError(f"Syntax error: expected {text!r} but found {found!r}", self.current.pos)
        self.advance()

    def parse(self) -> Node:
        if self.current.kind == "end":
            raise ODataFilterError("The $filter expression is empty", 0)
        node = self.or_expr()
        if self.current.kind != "end":
            raise ODataFilterError(f"Syntax error: unexpected {self.current.text!r}", self.current.pos)
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.current.kind == "keyword" and self.current.text == "or":
            self.advance()
            node = Logical("or", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.current.kind == "keyword" and self.current.text == "and":
            self.advance()
            node = Logical("and", node, self.not_expr())
        return node

    def not_expr(self) -> Node:
        if self.current.kind == "keyword" and self.current.text == "not":
            self.advance()
            return Not(self.not_expr())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        if self.current.kind == "keyword" and self.current.text in COMPARISONS:
            op = self.advance().text
            return Compare(op, left, self.operand())
        return left

    def operand(self) -> Node:
        token = self.current
        if token.text == "(":
            self.advance()
            node = self.or_expr()
            self.expect(")")
            return node
        if token.kind == "string":
            self.advance()
            return Literal(token.text[1:-1].replace("''", "'"))
        if token.kind == "number":
            self.advance()
            try:
                return Literal(Decimal(token.text))
            except InvalidOperation as exc:  # pragma: no cover - the pattern only admits numbers
                raise ODataFilterError(f"Invalid number {token.text!r}", token.pos) from exc
        if token.kind == "guid":
            self.advance()
            return Literal(token.text.lower())
        if token.kind == "datetime":
            self.advance()
            return Literal(_parse_datetime(token.text, token.pos))
        if token.kind == "keyword" and token.text in {"true", "false", "null"}:
            self.advance()
            return Literal({"true": True, "false": False, "null": None}[token.text])
        if token.kind == "name":
            self.advance()
            if self.current.text == "(":
                return self.call(token)
            return Member(token.text)
        found = token.text or "end of expression"
        raise ODataFilterError(f"Syntax error: expression expected but found {found!r}", token.pos)

    def call(self, name: Token) -> Node:
        arity = FUNCTIONS.get(name.text)
        if arity is None:
            raise ODataFilterError(f"Unknown function {name.text!r}", name.pos)
        self.expect("(")
        args = [self.or_expr()]
        while self.current.text == ",":
            self.advance()
            args.append(self.or_expr())
        self.expect(")")
        if len(args) != arity:
            raise ODataFilterError(f"Function {name.text!r} takes {arity} argument(s), got {len(args)}", name.pos)
        return Call(name.text, tuple(args))


def parse_filter(text: str) -> Node:
    """Parse OData `$filter` text into an expression tree."""
    return _Parser(text).parse()


def members(node: Node) -> set[str]:
    """Every property name the expression reads (for validating against an entity's fields)."""
    if isinstance(node, Member):
        return {node.name}
    if isinstance(node, Compare | Logical):
        return members(node.left) | members(node.right)
    if isinstance(node, Not):
        return members(node.operand)
    if isinstance(node, Call):
        return set().union(*(members(a) for a in node.args))
    return set()


def matches(node: Node, entity: Mapping[str, Any]) -> bool:
    """True when the entity satisfies the filter; raises `ODataFilterError` on incompatible types."""
    return _value(node, entity) is True


def _value(node: Node, entity: Mapping[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Member):
        if node.name not in entity:
            raise ODataFilterError(f"Could not find a property named '{node.name}'")
        return _normalise(entity[node.name])
    if isinstance(node, Logical):
        left = _value(node.left, entity) is True
        if node.op == "and":
            return left and _value(node.right, entity) is True
        return left or _value(node.right, entity) is True
    if isinstance(node, Not):
        return _value(node.operand, entity) is not True
    if isinstance(node, Compare):
        return _compare(node.op, _value(node.left, entity), _value(node.right, entity))
    return _call(node.name, [_value(a, entity) for a in node.args])


def _normalise(value: Any) -> Any:
    """Bring entity values into the literal domain: numbers → Decimal, ISO strings stay strings."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return Decimal(str(value))
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        if op == "eq":
            return left is right
        if op == "ne":
            return left is not right
        return False
    left, right = _coerce_pair(left, right)
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    try:
        if op == "gt":
            return bool(left > right)
        if op == "ge":
            return bool(left >= right)
        if op == "lt":
            return bool(left < right)
        return bool(left <= right)
    except TypeError as exc:
        raise ODataFilterError(f"A binary operator with incompatible types was detected ({op})") from exc


def _coerce_pair(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(left, datetime) and isinstance(right, str):
        return left, _parse_datetime(right, None)
    if isinstance(right, datetime) and isinstance(left, str):
        return _parse_datetime(left, None), right
    if isinstance(left, bool) != isinstance(right, bool) or isinstance(left, Decimal) != isinstance(right, Decimal):
        raise ODataFilterError(
            f"A binary operator with incompatible types was detected: {type(left).__name__} and {type(right).__name__}"
        )
    if isinstance(left, str) and isinstance(right, str) and _GUID.fullmatch(left) and _GUID.fullmatch(right):
        return left.lower(), right.lower()
    return left, right


_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def _call(name: str, args: list[Any]) -> Any:
    if not all(isinstance(a, str) for a in args):
        raise ODataFilterError(f"Function {name!r} needs string arguments")
    if name == "tolower":
        return args[0].lower()
    if name == "toupper":
        return args[0].upper()
    haystack, needle = args
    if name == "contains":
        return needle in haystack
    if name == "startswith":
        return haystack.startswith(needle)
    return haystack.endswith(needle)


def _parse_datetime(text: str, pos: int | None) -> datetime:
    try:
        if "T" not in text:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ODataFilterError(f"Invalid date/time literal {text!r}", pos) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
