"""Flow definitions: the Pydantic schema, validation with exact paths, and parsing of YAML/JSON.

A definition is validated in two passes. Pydantic checks the shape of each part; we dispatch step
types ourselves (built-in types plus custom ones registered through `crossdock.steps`) so that an
unknown type is reported at its own path (`steps[2].then[0].type`). Then every expression is
compiled, so a bad one is rejected at publish time, not at 3 a.m. in a run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crossdock.core.errors import CrossdockError, ErrorCode
from crossdock.engine.expressions import ExpressionError, compile_expression, compile_value

STEP_ID = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"


class InvalidFlow(CrossdockError):
    """A definition that cannot be accepted; `details.errors` lists each path and problem."""

    code = ErrorCode.INVALID_FLOW

    def __init__(self, errors: list[dict[str, str]]) -> None:
        summary = "; ".join(f"{e['path']}: {e['problem']}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"The flow definition is not valid: {summary}{more}.", details={"errors": errors})
        self.errors = errors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RetryPolicy(_Strict):
    max_attempts: int = Field(3, ge=1, le=100, description="Attempts in total, including the first.")
    backoff_s: float = Field(1.0, ge=0, le=3600, description="Delay before the 2nd attempt; doubles each time.")
    max_backoff_s: float = Field(300.0, ge=0, le=86400)
    jitter: float = Field(0.2, ge=0, le=1, description="Random extra delay, as a fraction of the backoff.")
    retry_on: Literal["transient", "all"] = Field(
        "all", description="Which non-connector exceptions are retried; ConnectorError decides by its kind."
    )


class StepBase(_Strict):
    id: str = Field(pattern=STEP_ID)
    type: str
    name: str | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_s: float | None = Field(None, gt=0, le=86400)


class ActionStep(StepBase):
    action: str
    input: Any = Field(default_factory=dict)
    key: str | None = Field(None, description="Business key (value template) in the idempotency key.")
    account: str | None = Field(None, description="Connected account whose rate budget this step spends.")


class MapStep(StepBase):
    output: Any


class ConditionStep(StepBase):
    if_: str = Field(alias="if")
    then: list[dict[str, Any]] = Field(default_factory=list)
    else_: list[dict[str, Any]] = Field(default_factory=list, alias="else")


class BranchCase(_Strict):
    when: str
    steps: list[dict[str, Any]] = Field(default_factory=list)


class BranchStep(StepBase):
    cases: list[BranchCase] = Field(min_length=1)
    default: list[dict[str, Any]] = Field(default_factory=list)


class ForeachStep(StepBase):
    items: str
    concurrency: int = Field(4, ge=1, le=256)
    steps: list[dict[str, Any]] = Field(min_length=1)
    output: Any = None


class SubflowStep(StepBase):
    flow: str = Field(description="Key of a published flow of the same merchant.")
    input: Any = Field(default_factory=dict)


class TimerStep(StepBase):
    seconds: float | str | None = None
    until: str | None = Field(None, description="Value template giving an ISO-8601 timestamp.")


class WaitStep(StepBase):
    key: str | None = Field(None, description="Value template: the key an event or decision resolves.")
    timeout_s: float | None = Field(None, gt=0, le=365 * 86400)
    on_timeout: list[dict[str, Any]] | Literal["fail", "continue"] = "fail"
    prompt: str | None = None
    approvers: list[str] = Field(default_factory=list, description="Roles that may decide (approvals).")


class RaiseCaseStep(StepBase):
    category: str = "unknown"
    severity: Literal["low", "medium", "high", "critical"] = "medium"
    message: str = "A run needs attention."
    data: Any = None


class EmitStep(StepBase):
    event: str = Field(min_length=1, max_length=120)
    payload: Any = None


class CustomStep(StepBase):
    input: Any = Field(default_factory=dict)


BUILTIN_STEPS: dict[str, type[StepBase]] = {
    "action": ActionStep,
    "map": MapStep,
    "condition": ConditionStep,
    "branch": BranchStep,
    "foreach": ForeachStep,
    "subflow": SubflowStep,
    "timer": TimerStep,
    "wait_for_event": WaitStep,
    "approval": WaitStep,
    "raise_case": RaiseCaseStep,
    "emit": EmitStep,
}


class WebhookTrigger(_Strict):
    type: Literal["webhook"]
    name: str = Field("webhook", pattern=STEP_ID)
    verifier: str = Field("generic", description="Registered verifier kind (generic, shopify, ...).")
    secret: str | None = Field(None, description="Shared secret for the generic HMAC-SHA256 signature.")
    connection_id: str | None = None
    topic: str | None = None


class CronTrigger(_Strict):
    type: Literal["cron"]
    name: str = Field("cron", pattern=STEP_ID)
    cron: str
    timezone: str = "UTC"
    input: Any = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, v: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(v):
            raise ValueError(f"{v!r} is not a valid cron expression")
        return v

    @field_validator("timezone")
    @classmethod
    def _valid_tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v


class PollTrigger(_Strict):
    type: Literal["poll"]
    name: str = Field("poll", pattern=STEP_ID)
    poller: str
    every_s: float = Field(60, ge=0.1, le=86400)
    config: dict[str, Any] = Field(default_factory=dict)


class EventTrigger(_Strict):
    type: Literal["event"]
    name: str = Field("event", pattern=STEP_ID)
    event: str


class ManualTrigger(_Strict):
    type: Literal["manual"]
    name: str = Field("manual", pattern=STEP_ID)


Trigger = WebhookTrigger | CronTrigger | PollTrigger | EventTrigger | ManualTrigger
TRIGGERS: dict[str, type[BaseModel]] = {
    "webhook": WebhookTrigger,
    "cron": CronTrigger,
    "poll": PollTrigger,
    "event": EventTrigger,
    "manual": ManualTrigger,
}


class FlowDefinition(_Strict):
    """A validated definition: triggers and typed steps (nested steps are typed too)."""

    name: str | None = None
    description: str | None = None
    triggers: list[Trigger] = Field(default_factory=list)
    steps: list[StepBase] = Field(min_length=1)
    output: Any = None


class _Raw(_Strict):
    name: str | None = None
    description: str | None = None
    triggers: list[dict[str, Any]] = Field(default_factory=list)
    steps: list[dict[str, Any]] = Field(min_length=1)
    output: Any = None


def _loc(prefix: str, loc: Iterable[Any]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _errors(prefix: str, exc: ValidationError) -> list[dict[str, str]]:
    return [{"path": _loc(prefix, e["loc"]), "problem": e["msg"]} for e in exc.errors()]


def parse_text(text: str) -> dict[str, Any]:
    """Parse a YAML or JSON document into a dict (JSON is YAML, but its errors read better)."""
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidFlow([{"path": "(document)", "problem": f"not valid YAML/JSON: {exc}"}]) from exc
    if not isinstance(data, dict):
        raise InvalidFlow([{"path": "(document)", "problem": "must be a mapping with `steps`"}])
    return data


class _Validator:
    def __init__(self, custom_steps: Callable[[str], type[BaseModel] | None]) -> None:
        self.custom_steps = custom_steps
        self.errors: list[dict[str, str]] = []
        self.ids: dict[str, str] = {}

    def err(self, path: str, problem: str) -> None:
        self.errors.append({"path": path, "problem": problem})

    def expr(self, path: str, source: Any) -> None:
        if not isinstance(source, str):
            self.err(path, "must be an expression string")
            return
        try:
            compile_expression(source[1:] if source.startswith("=") else source)
        except ExpressionError as exc:
            self.err(path, str(exc))

    def template(self, path: str, value: Any) -> None:
        try:
            compile_value(value)
        except ExpressionError as exc:
            self.err(path, str(exc))

    def steps(self, path: str, raw_steps: list[Any]) -> list[StepBase]:
        out = []
        for i, raw in enumerate(raw_steps):
            step = self.step(f"{path}[{i}]", raw)
            if step is not None:
                out.append(step)
        return out

    def step(self, path: str, raw: Any) -> StepBase | None:
        if not isinstance(raw, dict):
            self.err(path, "a step must be a mapping with `id` and `type`")
            return None
        kind = raw.get("type")
        if not isinstance(kind, str):
            self.err(f"{path}.type", "missing step type")
            return None
        model: type[BaseModel] | None = BUILTIN_STEPS.get(kind)
        custom_input: type[BaseModel] | None = None
        if model is None:
            custom = self.custom_steps(kind)
            if custom is None:
                known = ", ".join(sorted(BUILTIN_STEPS))
                self.err(f"{path}.type", f"unknown step type {kind!r} (built-in types: {known}; or a custom step)")
                return None
            model, custom_input = CustomStep, custom
        try:
            step = model.model_validate(raw)
        except ValidationError as exc:
            self.errors.extend(_errors(path, exc))
            return None
        assert isinstance(step, StepBase)
        if step.id in self.ids:
            self.err(f"{path}.id", f"duplicate step id {step.id!r} (first used at {self.ids[step.id]})")
        self.ids.setdefault(step.id, path)
        self.check(path, step, custom_input)
        return step

    def check(self, path: str, step: StepBase, custom_input: type[BaseModel] | None) -> None:
        if isinstance(step, ActionStep):
            self.template(f"{path}.input", step.input)
            if step.key is not None:
                self.template(f"{path}.key", step.key)
            if step.account is not None:
                self.template(f"{path}.account", step.account)
        elif isinstance(step, MapStep):
            self.template(f"{path}.output", step.output)
        elif isinstance(step, ConditionStep):
            self.expr(f"{path}.if", step.if_)
            self.steps(f"{path}.then", step.then)
            self.steps(f"{path}.else", step.else_)
        elif isinstance(step, BranchStep):
            for i, case in enumerate(step.cases):
                self.expr(f"{path}.cases[{i}].when", case.when)
                self.steps(f"{path}.cases[{i}].steps", case.steps)
            self.steps(f"{path}.default", step.default)
        elif isinstance(step, ForeachStep):
            self.expr(f"{path}.items", step.items)
            self.steps(f"{path}.steps", step.steps)
            self.template(f"{path}.output", step.output)
        elif isinstance(step, SubflowStep):
            self.template(f"{path}.input", step.input)
        elif isinstance(step, TimerStep):
            if (step.seconds is None) == (step.until is None):
                self.err(path, "a timer needs exactly one of `seconds` or `until`")
            if isinstance(step.seconds, str):
                self.template(f"{path}.seconds", step.seconds)
            if step.until is not None:
                self.template(f"{path}.until", step.until)
        elif isinstance(step, WaitStep):
            if step.type == "wait_for_event" and not step.key:
                self.err(f"{path}.key", "wait_for_event needs a `key` that the event resolves")
            if step.key:
                self.template(f"{path}.key", step.key)
            if step.prompt:
                self.template(f"{path}.prompt", step.prompt)
            if isinstance(step.on_timeout, list):
                self.steps(f"{path}.on_timeout", step.on_timeout)
        elif isinstance(step, RaiseCaseStep):
            self.template(f"{path}.message", step.message)
            self.template(f"{path}.data", step.data)
        elif isinstance(step, EmitStep):
            self.template(f"{path}.payload", step.payload)
        elif isinstance(step, CustomStep) and custom_input is not None:
            self.template(f"{path}.input", step.input)
            if isinstance(step.input, dict) and not any(
                isinstance(v, str) and (v.startswith("=") or "{{" in v) for v in step.input.values()
            ):
                try:
                    custom_input.model_validate(step.input)
                except ValidationError as exc:
                    self.errors.extend(_errors(f"{path}.input", exc))


def validate_definition(
    data: dict[str, Any] | str,
    *,
    custom_steps: Callable[[str], type[BaseModel] | None] = lambda _name: None,
    actions: Callable[[str], bool] | None = None,
) -> FlowDefinition:
    """Validate a definition; raise InvalidFlow listing every problem with its exact path."""
    if isinstance(data, str):
        data = parse_text(data)
    try:
        raw = _Raw.model_validate(data)
    except ValidationError as exc:
        raise InvalidFlow(_errors("", exc)) from exc
    v = _Validator(custom_steps)
    triggers: list[Any] = []
    names: set[str] = set()
    for i, t in enumerate(raw.triggers):
        kind = t.get("type")
        model = TRIGGERS.get(kind) if isinstance(kind, str) else None
        if model is None:
            v.err(f"triggers[{i}].type", f"unknown trigger type {kind!r} (one of: {', '.join(TRIGGERS)})")
            continue
        try:
            trig = model.model_validate(t)
        except ValidationError as exc:
            v.errors.extend(_errors(f"triggers[{i}]", exc))
            continue
        name = getattr(trig, "name", "")
        if name in names:
            v.err(f"triggers[{i}].name", f"duplicate trigger name {name!r}")
        names.add(name)
        triggers.append(trig)
    steps = v.steps("steps", raw.steps)
    if raw.output is not None:
        v.template("output", raw.output)
    if actions is not None:
        for path, step in walk(steps, "steps"):
            if isinstance(step, ActionStep) and not actions(step.action):
                v.err(f"{path}.action", f"unknown action {step.action!r}")
    if v.errors:
        raise InvalidFlow(v.errors)
    return FlowDefinition.model_construct(
        name=raw.name, description=raw.description, triggers=triggers, steps=steps, output=raw.output
    )


def children(step: StepBase) -> list[tuple[str, list[dict[str, Any]]]]:
    """The nested step lists of a step, each with its path segment."""
    if isinstance(step, ConditionStep):
        return [("then", step.then), ("else", step.else_)]
    if isinstance(step, BranchStep):
        return [(f"cases[{i}].steps", c.steps) for i, c in enumerate(step.cases)] + [("default", step.default)]
    if isinstance(step, ForeachStep):
        return [("steps", step.steps)]
    if isinstance(step, WaitStep) and isinstance(step.on_timeout, list):
        return [("on_timeout", step.on_timeout)]
    return []


def typed(raw: dict[str, Any]) -> StepBase:
    """A nested raw step as its typed model (the definition was validated already)."""
    model = BUILTIN_STEPS.get(raw["type"], CustomStep)
    return model.model_validate(raw)


def walk(steps: Iterable[StepBase], prefix: str) -> Iterable[tuple[str, StepBase]]:
    """Every step of a definition with its definition path (`steps[1].then[0]`), depth first."""
    for i, step in enumerate(steps):
        path = f"{prefix}[{i}]"
        yield path, step
        for seg, raw_children in children(step):
            yield from walk([typed(r) for r in raw_children], f"{path}.{seg}")


def subflow_refs(definition: FlowDefinition) -> list[tuple[str, str]]:
    """(definition path, flow key) of every sub-flow step."""
    return [(f"{p}.flow", s.flow) for p, s in walk(definition.steps, "steps") if isinstance(s, SubflowStep)]
