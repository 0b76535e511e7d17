"""Compiled JMESPath (crossdock.engine.jmes) against jmespath's own tree interpreter, on fixed
documents, on seeded random documents and on every expression the shipped templates contain."""

from __future__ import annotations

import random
import re
from typing import Any

import jmespath.exceptions
import pytest

from crossdock.connectors.sandbox.shopify_orders import make_order
from crossdock.engine.expressions import compile_expression, interpret
from crossdock.flows.catalog import _substitute, catalog

# Every node type of the jmespath AST, the built-in functions with exprefs, and our own functions.
EXPRESSIONS = [
    "a",
    "a.b.c",
    "a.b.list[0]",
    "a.b.list[-1]",
    "a.b.list[9]",
    "a.b.list[1:3]",
    "a.b.list[::-1]",
    "a.b.list[::2]",
    "people[*].name",
    "people[].name",
    "people[?age > `30`].name",
    "people[?age >= `30` && name != 'x'].name",
    "people[?age < `30` || tags].name",
    "people[?!tags].name",
    "people[?name == 'Ann'] | [0]",
    "people[*].[name, age]",
    "people[*].{n: name, t: tags[0]}",
    "map.*",
    "map.*.x",
    "nested[]",
    "nested[][]",
    "a || missing",
    'missing || `"fallback"`',
    "a && missing",
    "!missing",
    "!zero",
    "!`0`",
    "zero == `0`",
    "flag == `true`",
    "one == `true`",
    "`1` == `1.0`",
    "name < 'b'",
    "people[0].age > name",
    "@",
    "@.a",
    '`{"k": [1, 2]}`',
    "'raw string'",
    "length(people)",
    "sum(people[].age)",
    "max_by(people, &age).name",
    "min_by(people, &age).name",
    "sort_by(people, &name)[].name",
    "map(&age, people)",
    "map(&to_number(@), strings)",
    "join(', ', people[].name)",
    "keys(map)",
    "values(map)",
    "contains(people[].name, 'Ann')",
    "to_string(a)",
    "to_number('12.5')",
    "not_null(missing, a)",
    "type(@)",
    "concat('#', people[0].name, missing)",
    "lower(people[0].name)",
    "upper(people[0].name)",
    "round(`2.345`, `2`)",
    "coalesce(missing, zero, a)",
    "add(`1`, `2`)",
    "subtract(`1`, `2.5`)",
    "multiply(`3`, `0.1`)",
    "divide(`1`, `0`)",
    "fixed(`12.5`, `2`)",
    "fixed(sum(map(&to_number(@), strings)), `2`)",
    "str(`3.0`)",
    "people[].multiply(age, `2`)",
    "sum(people[].multiply(age, `2`))",
    "length(missing)",
    "abs(name)",
    "sort_by(people, &tags)",
    "empty || name",
    "empty && name",
    "[empty, zero, `[]`, '', `false`, name][?@]",
    "!empty",
]


def document(rng: random.Random | None = None) -> dict[str, Any]:
    if rng is None:
        return {
            "a": {"b": {"c": 1, "list": [1, 2, 3, 4]}},
            "name": "Ann",
            "zero": 0,
            "one": 1,
            "flag": True,
            "people": [
                {"name": "Ann", "age": 31, "tags": ["x"]},
                {"name": "Bob", "age": 25, "tags": []},
                {"name": "Cy", "age": 40},
            ],
            "map": {"p": {"x": 1}, "q": {"x": None}, "r": 3},
            "nested": [[1, [2]], 3, [[4]]],
            "strings": ["1.25", "2"],
            "empty": {},
        }
    return {
        key: _random_value(rng, 3) for key in ("a", "name", "zero", "one", "flag", "people", "map", "nested", "empty")
    }


def _random_value(rng: random.Random, depth: int) -> Any:
    scalars = [None, True, False, 0, 1, -2, 2.5, "", "Ann", "b"]
    roll = rng.random()
    if depth == 0 or roll < 0.4:
        return rng.choice(scalars)
    if roll < 0.7:
        return [_random_value(rng, depth - 1) for _ in range(rng.randrange(4))]
    keys = ["name", "age", "tags", "b", "c", "list", "x"]
    return {k: _random_value(rng, depth - 1) for k in rng.sample(keys, rng.randrange(0, 4))}


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "value", fn(*args)
    except (jmespath.exceptions.JMESPathError, TypeError) as exc:
        return "error", type(exc).__name__


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_compiled_matches_the_interpreter(source: str) -> None:
    data = document()
    compiled = compile_expression(source)
    expected = outcome(interpret, source, data)
    assert outcome(compiled, data) == expected
    assert repr(outcome(compiled, data)) == repr(expected)  # same types too (1 vs 1.0, True vs 1)


def test_compiled_matches_the_interpreter_on_random_documents() -> None:
    rng = random.Random(20261124)
    compiled = {source: compile_expression(source) for source in EXPRESSIONS}
    compared = 0
    for _ in range(300):
        data = document(rng)
        for source, fn in compiled.items():
            assert repr(outcome(fn, data)) == repr(outcome(interpret, source, data)), (source, data)
            compared += 1
    assert compared == 300 * len(EXPRESSIONS)


def _template_expressions() -> list[str]:
    """Every expression in the shipped templates, with `${params.NAME}` interpolated from the param's
    default as rendering does (`flows.catalog`), so a literal like `` `${params.lookback_days}` `` is
    checked as the JSON it becomes; raw YAML, so every `x-when` branch is included."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            if value.startswith("=") and not value.startswith("=="):
                found.add(value[1:])
            found.update(m.strip() for m in re.findall(r"\{\{(.*?)\}\}", value, re.S))

    out: set[str] = set()
    for versions in catalog().values():
        for template in versions.values():
            found.clear()
            walk(template.definition)
            defaults = template.defaults()
            bound = {b.role: "con_1" for b in template.bindings}
            out.update(str(_substitute(e, defaults, bound, template.name)) for e in found)
    return sorted(out)


def test_every_template_expression_matches_the_interpreter() -> None:
    sources = _template_expressions()
    order = make_order(42)
    data = {
        "input": order,
        "trigger": {"kind": "webhook"},
        "run": {"id": "run_1", "merchant_id": "mer_1"},
        "steps": {"order": {"total": "10.00", "external_id": "42"}, "tier": {"tier": "manager"}},
        "config": {"erp": "businesscentral"},
    }
    assert len(sources) > 100  # the templates really were read
    for source in sources:
        assert repr(outcome(compile_expression(source), data)) == repr(outcome(interpret, source, data)), source


def test_a_node_type_the_compiler_does_not_know_is_left_to_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    """A newer jmespath may add node types: they are evaluated by its own interpreter, not rejected."""
    import jmespath.visitor

    from crossdock.engine.expressions import _FUNCTIONS
    from crossdock.engine.jmes import compile_ast

    monkeypatch.setattr(
        jmespath.visitor.TreeInterpreter, "visit_future_node", lambda _self, node, value: (node["value"], value), False
    )
    evaluate = compile_ast({"type": "future_node", "value": "tag", "children": []}, _FUNCTIONS)

    assert evaluate({"a": 1}) == ("tag", {"a": 1})


FUNCTION_ERRORS = [
    "abs(name)",  # type error
    "abs(`1`, `2`)",  # arity
    "not_null()",  # variadic, too few
    "sum(people[].name)",  # array subtype error
    "sum(nested)",  # array of mixed types
    "max_by(people, &tags)",  # the expression gives the wrong type
    "join(`1`, strings)",
    "contains(`1`, `2`)",
    "starts_with(name, `1`)",  # the second of two arguments has the wrong type
    "join(', ', people)",  # the second argument fails its array subtype check
    "merge(map.p, people)",  # unchecked variadic argument: the function itself fails (ValueError)
]


@pytest.mark.parametrize("source", FUNCTION_ERRORS)
def test_function_errors_are_the_interpreters(source: str) -> None:
    """Resolved-once function calls raise what `Functions.call_function` raises, message included."""
    data = document()
    compiled = compile_expression(source)
    with pytest.raises(Exception) as expected:  # whatever the interpreter raises
        interpret(source, data)
    with pytest.raises(type(expected.value)) as got:
        compiled(data)
    assert str(got.value) == str(expected.value)


def test_a_call_repeated_in_a_template_is_computed_once_per_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossdock.engine import expressions

    calls: list[Any] = []
    real = expressions._Functions._func_fixed

    def counted(self: Any, n: float, digits: int) -> str:
        calls.append(n)
        return real(self, n, digits)

    # the function table holds the undecorated function; count calls to `fixed` through it
    monkeypatch.setitem(expressions._FUNCTIONS.FUNCTION_TABLE["fixed"], "function", counted)
    template = {
        "subtotal": "=fixed(sum(input.xs), `2`)",
        "total": "=fixed(sum(input.xs), `2`)",
        "per_group": "=input.groups[].fixed(sum(xs), `2`)",  # the same call shape on each element
        "own": "=fixed(sum(xs), `2`)",  # ... and on the root, which has its own `xs`
        "label": "Total {{ fixed(sum(input.xs), `2`) }}",
        "sorted_a": "=sort(input.xs)",
        "sorted_b": "=sort(input.xs)",
    }
    evaluate = expressions.compile_value(template)
    data = {"xs": [100], "input": {"xs": [1.5, 2.25], "groups": [{"xs": [1, 2]}, {"xs": [10]}]}}
    out = evaluate(data)
    # fixed(sum(input.xs)) once for three places, fixed(sum(xs)) on the root once, once per group
    assert sorted(calls) == sorted([3.75, 100, 3, 10])
    expected = {k: interpret(v[1:], data) for k, v in template.items() if v.startswith("=")}
    assert {k: v for k, v in out.items() if k != "label"} == expected
    assert out["label"] == "Total 3.75"
    # lists are never shared between two places of an output
    assert out["sorted_a"] == out["sorted_b"] and out["sorted_a"] is not out["sorted_b"]
    # a new evaluation computes afresh, on its own data
    calls.clear()
    again = evaluate({"xs": [], "input": {"xs": [4], "groups": []}})
    assert (again["subtotal"], again["total"], again["own"], again["per_group"]) == ("4.00", "4.00", "0.00", [])
    assert sorted(calls) == [0, 4]


def test_a_failed_evaluation_leaves_no_shared_result_behind() -> None:
    from crossdock.engine.expressions import compile_value

    evaluate = compile_value({"a": "=sum(input.xs)", "b": "=sum(input.xs)"})
    with pytest.raises(jmespath.exceptions.JMESPathTypeError):
        evaluate({"input": {"xs": ["not a number"]}})
    assert evaluate({"input": {"xs": [1, 2]}}) == {"a": 3, "b": 3}
    assert evaluate({"input": {"xs": [5]}}) == {"a": 5, "b": 5}
