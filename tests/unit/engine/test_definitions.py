"""Definition validation names the exact path; expressions are JMESPath and never eval."""

from __future__ import annotations

import pytest

from crossdock.engine.definitions import InvalidFlow, subflow_refs, validate_definition
from crossdock.engine.expressions import ExpressionError, compile_expression, compile_value, truthy


def errors_of(definition: object) -> list[dict[str, str]]:
    with pytest.raises(InvalidFlow) as err:
        validate_definition(definition)  # type: ignore[arg-type]
    return err.value.errors


def test_bad_expression_is_rejected_at_its_path() -> None:
    errs = errors_of(
        {
            "steps": [
                {"id": "ok", "type": "map", "output": 1},
                {
                    "id": "c",
                    "type": "condition",
                    "if": "a ==",
                    "then": [{"id": "x", "type": "map", "output": {"sku": "=lines[0"}}],
                },
            ]
        }
    )
    assert [e["path"] for e in errs] == ["steps[1].if", "steps[1].then[0].output"]
    assert errs[0]["problem"].startswith("bad expression 'a =='")


def test_unknown_step_type_is_rejected_at_its_path() -> None:
    errs = errors_of(
        {"steps": [{"id": "loop", "type": "foreach", "items": "input.x", "steps": [{"id": "y", "type": "teleport"}]}]}
    )
    assert errs == [{"path": "steps[0].steps[0].type", "problem": errs[0]["problem"]}]
    assert "unknown step type 'teleport'" in errs[0]["problem"]


def test_shape_errors_and_duplicate_ids() -> None:
    errs = errors_of(
        {
            "steps": [
                {"id": "a", "type": "map", "output": 1},
                {"id": "a", "type": "timer"},
                {"id": "r", "type": "action", "action": "x", "retry": {"max_attempts": 0}},
            ]
        }
    )
    assert [e["path"] for e in errs] == ["steps[1].id", "steps[1]", "steps[2].retry.max_attempts"]


def test_unknown_trigger_and_bad_cron_and_tz() -> None:
    errs = errors_of(
        {
            "triggers": [
                {"type": "carrier-pigeon"},
                {"type": "cron", "cron": "61 * * * *", "timezone": "Mars/Olympus"},
            ],
            "steps": [{"id": "a", "type": "map", "output": 1}],
        }
    )
    assert [e["path"] for e in errs] == ["triggers[0].type", "triggers[1].cron", "triggers[1].timezone"]


def test_yaml_definition_and_subflow_refs() -> None:
    text = """
steps:
  - id: call
    type: subflow
    flow: child
  - id: b
    type: branch
    cases:
      - when: "input.a"
        steps: [{id: inner, type: subflow, flow: other}]
"""
    d = validate_definition(text)
    assert subflow_refs(d) == [("steps[0].flow", "child"), ("steps[1].cases[0].steps[0].flow", "other")]


def test_expressions_are_jmespath_with_templates() -> None:
    data = {"input": {"id": 7, "lines": [{"q": 2}, {"q": 3}]}}
    assert compile_value({"n": "=sum(input.lines[].q)", "u": "orders/{{ input.id }}.json", "lit": "==x"})(data) == {
        "n": 5,
        "u": "orders/7.json",
        "lit": "=x",
    }
    assert compile_expression("multiply(input.id, `3`)")(data) == 21
    assert compile_expression("concat('SO-', str(input.id))")(data) == "SO-7"
    assert [truthy(v) for v in (0, "", [], None, False, "x")] == [True, False, False, False, False, True]
    with pytest.raises(ExpressionError):
        compile_expression("__import__('os').system('true')")
