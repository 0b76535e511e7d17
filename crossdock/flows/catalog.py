"""The template catalog: versioned YAML files, their parameter schemas, and rendering.

A template lives in `crossdock/flows/templates/<name>/v<N>.yaml` with `name`, `version`, `title`,
`description`, `params` (each `name`, `type`, `default`, `description`), `bindings` (connection
roles), `cases` (what it can raise) and `definition` (an engine flow definition).

Rendering is plain substitution, done once per instance version, so what runs is an ordinary,
pinned engine definition:
- a string that is exactly `${params.NAME}` or `${bind.ROLE}` becomes the typed value;
- `${...}` inside a longer string is interpolated as text (`$${` is a literal `${`);
- a mapping in a list with `x-when: {PARAM: value-or-list, bound: ROLE-or-list}` is kept only when
  every condition holds (this is how the ERP choice picks its steps), and the key is dropped.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from crossdock.core.errors import NotFound, ValidationFailed

TEMPLATE_DIR = Path(__file__).parent / "templates"
PARAM_TYPES = ("string", "integer", "decimal", "boolean", "enum", "map", "list", "cron")
_REF = re.compile(r"(?<!\$)\$\{\s*(params|bind)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_WHOLE = re.compile(r"^\$\{\s*(params|bind)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}$")


class TemplateError(ValidationFailed):
    """A template or its parameters are not acceptable; `details.errors` has each path and problem."""

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message, details={"errors": errors})
        self.errors = errors


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any
    description: str
    values: tuple[str, ...] = ()
    required: bool = False

    def public(self) -> dict[str, Any]:
        out = {"name": self.name, "type": self.type, "default": self.default, "description": self.description}
        if self.values:
            out["values"] = list(self.values)
        if self.required:
            out["required"] = True
        return out


@dataclass(frozen=True)
class Binding:
    role: str
    system: str
    required: bool
    description: str


@dataclass(frozen=True)
class Template:
    name: str
    version: int
    title: str
    description: str
    params: tuple[Param, ...]
    bindings: tuple[Binding, ...]
    cases: tuple[dict[str, str], ...]
    definition: dict[str, Any]
    source: str = field(repr=False, default="")

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}


# -- loading --------------------------------------------------------------------------------------


def _load(path: Path) -> Template:
    raw = yaml.safe_load(path.read_text())
    params = tuple(
        Param(
            name=p["name"],
            type=p["type"],
            default=p.get("default"),
            description=p.get("description", ""),
            values=tuple(p.get("values") or ()),
            required=bool(p.get("required", False)),
        )
        for p in raw.get("params") or []
    )
    bindings = tuple(
        Binding(role, b.get("system", role), bool(b.get("required", True)), b.get("description", ""))
        for role, b in (raw.get("bindings") or {}).items()
    )
    template = Template(
        name=raw["name"],
        version=int(raw["version"]),
        title=raw.get("title", raw["name"]),
        description=raw.get("description", ""),
        params=params,
        bindings=bindings,
        cases=tuple(raw.get("cases") or ()),
        definition=raw["definition"],
        source=str(path),
    )
    expected = f"v{template.version}.yaml"
    if path.parent.name != template.name or path.name != expected:
        raise TemplateError(f"Template file {path} must be {template.name}/{expected}.", [])
    for p in params:
        if p.type not in PARAM_TYPES:
            raise TemplateError(f"Template {template.name} v{template.version}: param {p.name} has bad type.", [])
        if not p.required:
            coerce(p, p.default, f"params.{p.name}.default")
    return template


@functools.cache
def catalog(root: Path = TEMPLATE_DIR) -> dict[str, dict[int, Template]]:
    """Every template version on disk, by name then version (loaded once per process)."""
    out: dict[str, dict[int, Template]] = {}
    for path in sorted(root.glob("*/v*.yaml")):
        template = _load(path)
        out.setdefault(template.name, {})[template.version] = template
    return out


def get_template(name: str, version: int | None = None) -> Template:
    """A template version (the latest when `version` is None); 404 when there is none."""
    versions = catalog().get(name)
    if not versions:
        raise NotFound("template", name)
    number = max(versions) if version is None else version
    if number not in versions:
        raise NotFound("template version", f"{name}@{number}")
    return versions[number]


# -- parameters -----------------------------------------------------------------------------------


def coerce(param: Param, value: Any, path: str) -> Any:
    """The value in its canonical JSON form, or TemplateError naming `path`."""

    def bad(problem: str) -> TemplateError:
        return TemplateError(f"{path}: {problem}", [{"path": path, "problem": problem}])

    t = param.type
    if t in ("string", "cron"):
        if not isinstance(value, str):
            raise bad("must be a string")
        if t == "cron":
            from croniter import croniter

            if not croniter.is_valid(value):
                raise bad(f"{value!r} is not a valid cron expression")
        return value
    if t == "enum":
        if value not in param.values:
            raise bad(f"must be one of {', '.join(param.values)}")
        return value
    if t == "boolean":
        if not isinstance(value, bool):
            raise bad("must be true or false")
        return value
    if t == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("must be an integer")
        return value
    if t == "decimal":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise bad('must be a decimal number (preferably a string, e.g. "2.5")')
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise bad(f"{value!r} is not a decimal number") from None
        if not number.is_finite() or number < 0:
            raise bad("must be a finite number ≥ 0")
        return str(number)
    if t == "map":
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise bad("must be an object with string keys")
        for k, v in value.items():
            if not isinstance(v, (str, int)) or isinstance(v, bool):
                raise bad(f"value of {k!r} must be a string or an integer")
        return dict(value)
    if t == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("must be a list of strings")
        return list(value)
    raise bad(f"unknown parameter type {t!r}")  # pragma: no cover - checked at load


def validate_overrides(template: Template, overrides: dict[str, Any]) -> dict[str, Any]:
    """Canonical overrides; every problem listed with its path (`overrides.NAME`)."""
    errors: list[dict[str, str]] = []
    out: dict[str, Any] = {}
    for name, value in overrides.items():
        param = template.param(name)
        if param is None:
            known = ", ".join(p.name for p in template.params)
            errors.append({"path": f"overrides.{name}", "problem": f"unknown parameter (known: {known})"})
            continue
        try:
            out[name] = coerce(param, value, f"overrides.{name}")
        except TemplateError as exc:
            errors.extend(exc.errors)
    for param in template.params:
        if param.required and param.name not in overrides:
            errors.append({"path": f"overrides.{param.name}", "problem": "is required"})
    if errors:
        summary = "; ".join(f"{e['path']}: {e['problem']}" for e in errors[:5])
        raise TemplateError(f"The parameters of {template.name} v{template.version} are not valid: {summary}.", errors)
    return out


def merged_params(template: Template, overrides: dict[str, Any]) -> dict[str, Any]:
    return {**template.defaults(), **{k: v for k, v in overrides.items() if template.param(k)}}


def validate_bindings(template: Template, bindings: dict[str, str]) -> None:
    errors = [
        {"path": f"bindings.{role}", "problem": f"unknown role (known: {', '.join(b.role for b in template.bindings)})"}
        for role in bindings
        if role not in {b.role for b in template.bindings}
    ]
    errors += [
        {"path": f"bindings.{b.role}", "problem": f"a {b.system} connection is required"}
        for b in template.bindings
        if b.required and not bindings.get(b.role)
    ]
    if errors:
        summary = "; ".join(f"{e['path']}: {e['problem']}" for e in errors)
        raise TemplateError(f"The connections of {template.name} v{template.version} are not valid: {summary}.", errors)


# -- rendering ------------------------------------------------------------------------------------


def _matches(cond: dict[str, Any], params: dict[str, Any], bindings: dict[str, str]) -> bool:
    for key, want in cond.items():
        wanted = want if isinstance(want, list) else [want]
        if key == "bound":
            if not all(bindings.get(role) for role in wanted):
                return False
        elif params.get(key) not in wanted:
            return False
    return True


def _substitute(value: Any, params: dict[str, Any], bindings: dict[str, str], path: str) -> Any:
    def lookup(kind: str, name: str) -> Any:
        source: dict[str, Any] = params if kind == "params" else bindings
        if name not in source:
            raise TemplateError(
                f"{path}: ${{{kind}.{name}}} is not defined", [{"path": path, "problem": f"unknown {kind}.{name}"}]
            )
        return source[name]

    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole:
            return lookup(whole.group(1), whole.group(2))
        text = _REF.sub(lambda m: str(lookup(m.group(1), m.group(2))), value)
        return text.replace("$${", "${")
    if isinstance(value, dict):
        return {k: _substitute(v, params, bindings, f"{path}.{k}") for k, v in value.items() if k != "x-when"}
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            if isinstance(item, dict) and "x-when" in item and not _matches(item["x-when"], params, bindings):
                continue
            out.append(_substitute(item, params, bindings, f"{path}[{i}]"))
        return out
    return value


def render(template: Template, overrides: dict[str, Any], bindings: dict[str, str]) -> dict[str, Any]:
    """The engine definition of `template` with the merged parameters and connection ids."""
    params = merged_params(template, validate_overrides(template, overrides))
    bound = {b.role: bindings.get(b.role, "") for b in template.bindings}
    definition = _substitute(template.definition, params, bound, "definition")
    assert isinstance(definition, dict)
    definition.setdefault("name", f"{template.title} (v{template.version})")
    return definition
