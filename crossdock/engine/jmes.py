"""JMESPath ASTs compiled to Python closures.

`jmespath` parses an expression once, but evaluates it by walking the AST with a visitor that looks
a method up for every node on every evaluation. On the order workload that walk was a quarter of a
worker's CPU (docs/performance.md). Here each node of the parsed AST (the `jmespath` package's own
parser and AST, unchanged) becomes a closure once per flow version, so evaluation is plain nested
calls. The semantics are `jmespath.visitor.TreeInterpreter`'s, node type by node type, and
function calls make `Functions.call_function`'s argument and type checks, resolved once (`_compile_call`);
`tests/unit/engine/test_jmes.py` checks results against the interpreter expression by expression.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jmespath
import jmespath.functions
import jmespath.visitor

# The interpreter's own comparison helpers (jmespath is pinned; the stubs omit private names).
from jmespath.visitor import _equals, _is_actual_number, _is_comparable  # type: ignore[attr-defined]

Fn = Callable[[Any], Any]

_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "lt": lambda a, b: a < b,
    "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b,
    "gte": lambda a, b: a >= b,
}


def _false(value: Any) -> bool:
    # The interpreter's `_is_false`: equality on purpose (0 and 0.0 are true in JMESPath).
    return value == "" or value == [] or value == {} or value is None or value is False


class _Expression(jmespath.visitor._Expression):  # the name is what `expref` type checks look at
    """An `&expr` argument: functions call `visit(expression, value)`, which runs the compiled body."""

    def __init__(self, fn: Fn) -> None:
        self.expression = ""  # unused: `visit` ignores the node it is given
        self.fn = fn

    def visit(self, node: Any, *args: Any, **kwargs: Any) -> Any:
        return self.fn(args[0])


def _compile_call(name: str, args: list[Fn], functions: jmespath.functions.Functions) -> Fn:
    """A function call with `Functions.call_function`'s checks, resolved once instead of per call.

    The library looks the function up and re-derives the allowed Python type names from the
    signature's strings on every call (a third of the benchmark mapping's time). Here the arity is
    checked when compiling (a wrong arity, or an unknown function, keeps the library's own call, so
    it raises the library's error when evaluated) and each argument's allowed type names are a set;
    any argument that fails the set, and every array subtype check, goes to the library's own
    checks, which raise its errors."""
    spec = functions.FUNCTION_TABLE.get(name)
    signature = spec["signature"] if spec else None
    arity_ok = signature is not None and (
        len(args) >= len(signature) if signature and signature[-1].get("variadic") else len(args) == len(signature)
    )
    if spec is None or not arity_ok:
        call = functions.call_function
        return lambda value: call(name, [a(value) for a in args])
    fn = spec["function"]
    checks: list[tuple[int, frozenset[str], list[Any], list[str]]] = []
    for i, arg in enumerate(signature or []):
        types = arg["types"]
        if types:
            allowed, subtypes = functions._get_allowed_pytypes(types)  # type: ignore[attr-defined]
            checks.append((i, frozenset(allowed), subtypes, types))

    def check(i: int, current: Any) -> None:
        for j, allowed, subtypes, types in checks:
            if j != i:
                continue
            if type(current).__name__ not in allowed:
                functions._type_check_single(current, types, name)  # type: ignore[attr-defined]  # raises
            elif subtypes:
                functions._subtype_check(current, subtypes, types, name)  # type: ignore[attr-defined]

    # One- and two-argument calls (most of them) without the argument list and the loop: a type whose
    # name is allowed and that needs no array subtype check passes at once; anything else goes
    # through `check`, which runs the library's checks (and raises its errors).
    fast = {i: allowed for i, allowed, subtypes, _types in checks if not subtypes}
    slow = {i for i, _allowed, subtypes, _types in checks if subtypes}
    everything = frozenset(("dict", "list", "str", "int", "float", "bool", "NoneType"))

    def passes(i: int) -> frozenset[str]:
        """Type names argument `i` takes without further checks (empty: always check it)."""
        return frozenset() if i in slow else fast.get(i, everything)

    if len(args) == 1 and not (signature and signature[-1].get("variadic")):
        (arg0,) = args
        ok0 = passes(0)

        def invoke1(value: Any) -> Any:
            a = arg0(value)
            if type(a).__name__ not in ok0:
                check(0, a)
            return fn(functions, a)

        return invoke1
    if len(args) == 2 and not (signature and signature[-1].get("variadic")):
        arg0, arg1 = args
        ok0, ok1 = passes(0), passes(1)

        def invoke2(value: Any) -> Any:
            a, b = arg0(value), arg1(value)
            if type(a).__name__ not in ok0:
                check(0, a)
            if type(b).__name__ not in ok1:
                check(1, b)
            return fn(functions, a, b)

        return invoke2

    def invoke(value: Any) -> Any:
        resolved = [a(value) for a in args]
        for i, allowed, subtypes, types in checks:
            current = resolved[i]
            if type(current).__name__ not in allowed:
                functions._type_check_single(current, types, name)  # type: ignore[attr-defined]  # raises
            elif subtypes:
                functions._subtype_check(current, subtypes, types, name)  # type: ignore[attr-defined]
        return fn(functions, *resolved)

    return invoke


class Shared:
    """Function calls that occur more than once in one value template (`expressions.compile_value`),
    computed once per evaluation of the template.

    A map step's fields often repeat a sum: the benchmark's order mapping computes the line sum and
    the discount sum for their own fields and again for the total (a fifth of the map's time). Each
    repeated call (same AST) compiles to one closure that, when it is evaluated against the
    template's data itself (not an element of a projection), keeps its result until the evaluation
    ends (`evaluator`). Only immutable results are kept (numbers, strings, booleans, null), so no
    list or object is ever shared between two places of an output. Evaluation is synchronous, so one
    template's evaluations never interleave."""

    _KINDS = frozenset(("function_expression",))

    def __init__(self, repeated: set[str]) -> None:
        self.repeated = repeated
        self.closures: dict[str, Fn] = {}
        self.root: Any = None
        self.memo: dict[str, Any] = {}

    @classmethod
    def key(cls, node: Any) -> str | None:
        """The identity of a call node worth sharing (its AST as text), None for other nodes."""
        return repr(node) if isinstance(node, dict) and node.get("type") in cls._KINDS else None

    @classmethod
    def count(cls, node: Any, counts: dict[str, int]) -> None:
        """Add the shareable nodes of the AST `node` to `counts`."""
        key = cls.key(node)
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
        for child in node.get("children", []) if isinstance(node, dict) else []:
            cls.count(child, counts)

    def wrap(self, key: str, inner: Fn) -> Fn:
        memo = self.memo

        def shared(value: Any) -> Any:
            if value is not self.root:
                return inner(value)
            if key in memo:
                return memo[key]
            result = inner(value)
            if result is None or type(result) in _IMMUTABLE:
                memo[key] = result
            return result

        return shared

    def evaluator(self, fn: Fn) -> Fn:
        """`fn` with the memo scoped to one evaluation (the data it is called with is the root)."""

        def evaluate(data: Any) -> Any:
            self.root = data
            try:
                return fn(data)
            finally:
                self.root = None
                self.memo.clear()

        return evaluate


_IMMUTABLE = frozenset((str, int, float, bool))


def compile_ast(node: Any, functions: jmespath.functions.Functions, shared: Shared | None = None) -> Fn:
    """A closure computing what `TreeInterpreter(options).visit(node, data)` computes; with `shared`,
    the calls it names are computed once per evaluation of their template."""
    if shared is not None:
        key = Shared.key(node)
        if key is not None and key in shared.repeated:
            fn = shared.closures.get(key)
            if fn is None:
                fn = shared.closures[key] = shared.wrap(key, _compile_node(node, functions, shared))
            return fn
    return _compile_node(node, functions, shared)


def _compile_node(node: Any, functions: jmespath.functions.Functions, shared: Shared | None) -> Fn:
    kind = node["type"]
    children = node.get("children", [])

    def compile_child(child: Any) -> Fn:
        return compile_ast(child, functions, shared)

    def sub(i: int) -> Fn:
        return compile_child(children[i])

    if kind == "field":
        name = node["value"]

        def field(value: Any) -> Any:
            try:
                return value.get(name)
            except AttributeError:
                return None

        return field
    if kind in ("subexpression", "index_expression", "pipe"):
        chain = [compile_child(c) for c in children]
        if len(chain) == 2:
            first, second = chain
            return lambda value: second(first(value))

        def sequence(value: Any) -> Any:
            for fn in chain:
                value = fn(value)
            return value

        return sequence
    if kind in ("current", "identity"):
        return lambda value: value
    if kind == "literal":
        literal = node["value"]
        return lambda _value: literal
    if kind == "key_val_pair":
        return sub(0)
    if kind == "comparator":
        left, right, op = sub(0), sub(1), node["value"]
        if op == "eq":
            return lambda value: _equals(left(value), right(value))
        if op == "ne":
            return lambda value: not _equals(left(value), right(value))
        order = _ORDERING[op]

        def compare(value: Any) -> Any:
            a, b = left(value), right(value)
            if not (_is_comparable(a) and _is_comparable(b)):
                return None
            return order(a, b)

        return compare
    if kind == "expref":
        body = sub(0)
        return lambda _value: _Expression(body)
    if kind == "function_expression":
        return _compile_call(node["value"], [compile_child(c) for c in children], functions)
    if kind in ("projection", "filter_projection", "value_projection"):
        base, each = sub(0), sub(1)
        keep = sub(2) if kind == "filter_projection" else None
        values = kind == "value_projection"

        def project(value: Any) -> Any:
            items = base(value)
            if values:
                try:
                    items = list(items.values())
                except AttributeError:
                    return None
            elif not isinstance(items, list):
                return None
            out = []
            for element in items:
                if keep is not None and _false(keep(element)):
                    continue
                current = each(element)
                if current is not None:
                    out.append(current)
            return out

        return project
    if kind == "flatten":
        base = sub(0)

        def flatten(value: Any) -> Any:
            items = base(value)
            if not isinstance(items, list):
                return None
            out: list[Any] = []
            for element in items:
                if isinstance(element, list):
                    out.extend(element)
                else:
                    out.append(element)
            return out

        return flatten
    if kind == "index":
        index = node["value"]

        def at(value: Any) -> Any:
            if not isinstance(value, list):
                return None
            try:
                return value[index]
            except IndexError:
                return None

        return at
    if kind == "slice":
        cut = slice(*children)
        return lambda value: value[cut] if isinstance(value, list) else None
    if kind == "multi_select_dict":
        pairs = [(c["value"], compile_child(c)) for c in children]
        return lambda value: None if value is None else {k: fn(value) for k, fn in pairs}
    if kind == "multi_select_list":
        items = [compile_child(c) for c in children]
        return lambda value: None if value is None else [fn(value) for fn in items]
    if kind == "or_expression":
        left, right = sub(0), sub(1)

        def either(value: Any) -> Any:
            matched = left(value)
            return right(value) if _false(matched) else matched

        return either
    if kind == "and_expression":
        left, right = sub(0), sub(1)

        def both(value: Any) -> Any:
            matched = left(value)
            return matched if _false(matched) else right(value)

        return both
    if kind == "not_expression":
        inner = sub(0)

        def negate(value: Any) -> Any:
            result = inner(value)
            if _is_actual_number(result) and result == 0:
                return False  # !0 is false: 0 is not special in JMESPath
            return not result

        return negate
    # A node type this compiler does not know (a newer jmespath): let the library's interpreter do it.
    interpreter = jmespath.visitor.TreeInterpreter(jmespath.Options(custom_functions=functions))
    return lambda value: interpreter.visit(node, value)
