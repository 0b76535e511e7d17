"""Flow versions compiled once per process: typed steps with their expressions precompiled.

A worker keeps compiled versions in a small cache keyed by version id, so the per-step cost is a
dict lookup and a JMESPath tree walk, never parsing or validation.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from crossdock.engine.definitions import (
    ActionStep,
    BranchStep,
    ConditionStep,
    CustomStep,
    EmitStep,
    FlowDefinition,
    ForeachStep,
    MapStep,
    RaiseCaseStep,
    RetryPolicy,
    StepBase,
    SubflowStep,
    TimerStep,
    WaitStep,
    typed,
)
from crossdock.engine.expressions import Evaluator, compile_expression, compile_value


def _expr(source: str) -> Evaluator:
    return compile_expression(source[1:] if source.startswith("=") else source)


@dataclass
class CompiledStep:
    id: str
    type: str
    model: StepBase
    retry: RetryPolicy
    timeout_s: float | None
    values: dict[str, Evaluator] = field(default_factory=dict)
    branches: list[tuple[Evaluator | None, list[CompiledStep]]] = field(default_factory=list)
    body: list[CompiledStep] = field(default_factory=list)
    trivial: bool = False  # no external effect: may be journalled together with later steps


@dataclass
class CompiledFlow:
    version_id: str
    flow_id: str
    definition: FlowDefinition
    steps: list[CompiledStep]
    output: Evaluator | None


def compile_steps(raw_or_typed: list[Any]) -> list[CompiledStep]:
    return [compile_step(s if isinstance(s, StepBase) else typed(s)) for s in raw_or_typed]


def compile_step(step: StepBase) -> CompiledStep:
    c = CompiledStep(step.id, step.type, step, step.retry, step.timeout_s)
    if isinstance(step, ActionStep):
        c.values["input"] = compile_value(step.input)
        if step.key is not None:
            c.values["key"] = compile_value(step.key)
        if step.account is not None:
            c.values["account"] = compile_value(step.account)
    elif isinstance(step, MapStep):
        c.values["output"] = compile_value(step.output)
        c.trivial = True
    elif isinstance(step, ConditionStep):
        c.branches = [(_expr(step.if_), compile_steps(step.then)), (None, compile_steps(step.else_))]
    elif isinstance(step, BranchStep):
        c.branches = [(_expr(case.when), compile_steps(case.steps)) for case in step.cases]
        c.branches.append((None, compile_steps(step.default)))
    elif isinstance(step, ForeachStep):
        c.values["items"] = _expr(step.items)
        c.body = compile_steps(step.steps)
        if step.output is not None:
            c.values["output"] = compile_value(step.output)
    elif isinstance(step, SubflowStep):
        c.values["input"] = compile_value(step.input)
    elif isinstance(step, TimerStep):
        if step.seconds is not None:
            c.values["seconds"] = compile_value(step.seconds)
        if step.until is not None:
            c.values["until"] = compile_value(step.until)
    elif isinstance(step, WaitStep):
        if step.key:
            c.values["key"] = compile_value(step.key)
        if step.prompt:
            c.values["prompt"] = compile_value(step.prompt)
        if isinstance(step.on_timeout, list):
            c.body = compile_steps(step.on_timeout)
    elif isinstance(step, RaiseCaseStep):
        c.values["message"] = compile_value(step.message)
        c.values["data"] = compile_value(step.data)
    elif isinstance(step, EmitStep):
        c.values["payload"] = compile_value(step.payload)
    elif isinstance(step, CustomStep):
        c.values["input"] = compile_value(step.input)
    return c


def compile_flow(version_id: str, flow_id: str, definition: FlowDefinition) -> CompiledFlow:
    output = compile_value(definition.output) if definition.output is not None else None
    return CompiledFlow(version_id, flow_id, definition, compile_steps(definition.steps), output)


class FlowCache:
    """Compiled versions by id (LRU). Versions are immutable, so entries never go stale."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._items: OrderedDict[str, CompiledFlow] = OrderedDict()

    def get(self, version_id: str) -> CompiledFlow | None:
        flow = self._items.get(version_id)
        if flow is not None:
            self._items.move_to_end(version_id)
        return flow

    def put(self, flow: CompiledFlow) -> None:
        self._items[flow.version_id] = flow
        while len(self._items) > self.size:
            self._items.popitem(last=False)
