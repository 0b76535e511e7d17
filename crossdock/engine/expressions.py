"""The one safe expression language of flows: JMESPath, compiled once per flow version.

Why JMESPath (and not JSONata, Jinja or Python): it is a pure query language over JSON with no
side effects, no loops that can run forever, no attribute access into Python objects and a formal
spec with conformance tests in several languages (so the console can preview expressions in the
browser with the same results). It cannot call `eval`, open files or reach the network. We add a
few pure helper functions (`concat`, `lower`, `upper`, `round`, `fixed`, `coalesce`, `str`, and
`add`/`subtract`/`multiply`/`divide`, since JMESPath has no arithmetic operators).

Inside flow definitions a value is either a literal, an expression (a string starting with `=`,
e.g. `"=input.order.id"`; write `"==..."` for a literal leading `=`), or a string with
`{{ expression }}` placeholders (e.g. `"orders/{{ input.id }}.json"`). Dicts and lists are walked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.functions

from crossdock.engine.jmes import Shared, compile_ast


class ExpressionError(ValueError):
    """An expression that does not parse; `message` says where and why."""


class _Functions(jmespath.functions.Functions):
    @jmespath.functions.signature({"types": [], "variadic": True})
    def _func_concat(self, *args: Any) -> str:
        return "".join("" if a is None else str(a) for a in args)

    @jmespath.functions.signature({"types": ["string"]})
    def _func_lower(self, s: str) -> str:
        return s.lower()

    @jmespath.functions.signature({"types": ["string"]})
    def _func_upper(self, s: str) -> str:
        return s.upper()

    @jmespath.functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_round(self, n: float, digits: int) -> float:
        return round(n, int(digits))

    @jmespath.functions.signature({"types": [], "variadic": True})
    def _func_coalesce(self, *args: Any) -> Any:
        return next((a for a in args if a is not None), None)

    @jmespath.functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_add(self, a: float, b: float) -> float:
        return a + b

    @jmespath.functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_subtract(self, a: float, b: float) -> float:
        return a - b

    @jmespath.functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_multiply(self, a: float, b: float) -> float:
        return a * b

    @jmespath.functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_divide(self, a: float, b: float) -> float | None:
        return None if b == 0 else a / b

    @jmespath.functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_fixed(self, n: float, digits: int) -> str:
        """A number as text with exactly `digits` decimals, rounded half-even on its decimal value
        (fixed(12.5, 2) gives "12.50"): how money goes into most ERP APIs."""
        quantum = Decimal(1).scaleb(-int(digits))
        return str(Decimal(repr(n)).quantize(quantum, rounding=ROUND_HALF_EVEN))

    @jmespath.functions.signature({"types": []})
    def _func_str(self, value: Any) -> str:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return str(int(value))
        return "" if value is None else str(value)


_FUNCTIONS = _Functions()
_OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)
_FUNCTION_NAMES = frozenset(_FUNCTIONS.FUNCTION_TABLE)
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)

Evaluator = Callable[[Any], Any]


def compile_expression(source: str, shared: Shared | None = None) -> Evaluator:
    """Compile one JMESPath expression; raises ExpressionError naming the position."""
    try:
        parsed = jmespath.compile(source.strip())
    except jmespath.exceptions.JMESPathError as exc:
        pos = getattr(exc, "lex_position", None)
        where = f" at character {pos}" if isinstance(pos, int) else ""
        token = getattr(exc, "token_value", None)
        near = f" near {token!r}" if token else ""
        raise ExpressionError(f"bad expression {source!r}{where}{near}: {getattr(exc, 'msg', exc)}") from exc
    unknown = sorted(_unknown_functions(parsed.parsed))
    if unknown:
        raise ExpressionError(f"bad expression {source!r}: unknown function(s) {', '.join(unknown)}")

    return compile_ast(parsed.parsed, _FUNCTIONS, shared)


def interpret(source: str, data: Any) -> Any:
    """The reference: `jmespath`'s own tree interpreter, with our functions (tests compare against it)."""
    return jmespath.search(source.strip(), data, options=_OPTIONS)


def _unknown_functions(node: Any) -> set[str]:
    if not isinstance(node, dict):
        return set()
    found = set()
    if node.get("type") == "function_expression" and node.get("value") not in _FUNCTION_NAMES:
        found.add(str(node.get("value")))
    for child in node.get("children", []):
        found |= _unknown_functions(child)
    return found


def _constant(value: Any) -> Evaluator:
    return lambda _data: value


def compile_value(value: Any) -> Evaluator:
    """Compile a value template (literal, `=expr`, `{{ expr }}` string, or dict/list of those).

    A function call that occurs more than once in the template (the same sum in two fields, say) is
    computed once per evaluation (`jmes.Shared`)."""
    counts: dict[str, int] = {}
    for source in _sources(value):
        try:
            Shared.count(jmespath.compile(source.strip()).parsed, counts)
        except jmespath.exceptions.JMESPathError:
            continue  # compiling it below raises the ExpressionError
    repeated = {key for key, n in counts.items() if n > 1}
    if not repeated:
        return _compile(value)[0]
    shared = Shared(repeated)
    return shared.evaluator(_compile(value, shared)[0])


def _sources(value: Any) -> list[str]:
    """The expressions of a value template, in `_compile`'s order."""
    if isinstance(value, str):
        if value.startswith("=="):
            return []
        if value.startswith("="):
            return [value[1:]]
        return [m.group(1) for m in _PLACEHOLDER.finditer(value)] if "{{" in value else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in _sources(v)]
    if isinstance(value, list):
        return [s for v in value for s in _sources(v)]
    return []


def is_dynamic(value: Any) -> bool:
    return _compile(value)[1]


def _compile(value: Any, shared: Shared | None = None) -> tuple[Evaluator, bool]:
    if isinstance(value, str):
        if value.startswith("=="):
            return _constant(value[1:]), False
        if value.startswith("="):
            return compile_expression(value[1:], shared), True
        if "{{" in value:
            return _compile_template(value, shared), True
        return _constant(value), False
    if isinstance(value, dict):
        parts = {k: _compile(v, shared) for k, v in value.items()}
        if not any(d for _e, d in parts.values()):
            return _constant(value), False
        items = [(k, e) for k, (e, _d) in parts.items()]
        return (lambda data: {k: e(data) for k, e in items}), True
    if isinstance(value, list):
        compiled = [_compile(v, shared) for v in value]
        if not any(d for _e, d in compiled):
            return _constant(value), False
        evals = [e for e, _d in compiled]
        return (lambda data: [e(data) for e in evals]), True
    return _constant(value), False


def _compile_template(text: str, shared: Shared | None = None) -> Evaluator:
    pieces: list[str | Evaluator] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > pos:
            pieces.append(text[pos : match.start()])
        pieces.append(compile_expression(match.group(1), shared))
        pos = match.end()
    if pos < len(text):
        pieces.append(text[pos:])

    def render(data: Any) -> str:
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
            else:
                v = piece(data)
                if isinstance(v, float) and v.is_integer():
                    v = int(v)
                out.append("" if v is None else str(v))
        return "".join(out)

    return render


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, empty string/list/object are false."""
    if value is None or value is False:
        return False
    return not (isinstance(value, (str, list, dict)) and len(value) == 0)
