"""What an upgrade changes for one instance: parameters and a summary of the definition diff.

Pure functions over templates and rendered definitions, so the dry run and the real upgrade report
exactly the same thing.
"""

from __future__ import annotations

from typing import Any

from crossdock.flows.catalog import Template


def param_diff(old: Template, new: Template, overrides: dict[str, Any]) -> dict[str, Any]:
    """Parameters added and removed by the new version, defaults that change the effective value
    (only where the merchant did not override), and the overrides carried over unchanged."""
    old_names = {p.name for p in old.params}
    new_names = {p.name for p in new.params}
    added = [{"name": p.name, "default": p.default} for p in new.params if p.name not in old_names]
    removed = [
        {"name": p.name, "overridden": p.name in overrides, "value": overrides.get(p.name, p.default)}
        for p in old.params
        if p.name not in new_names
    ]
    defaulted = []
    for p in new.params:
        before = old.param(p.name)
        if before is not None and p.name not in overrides and before.default != p.default:
            defaulted.append({"name": p.name, "from": before.default, "to": p.default})
    kept = {k: v for k, v in sorted(overrides.items()) if k in new_names}
    return {"added": added, "removed": removed, "defaulted": defaulted, "kept": kept}


def _steps(steps: list[Any], prefix: str, out: dict[str, Any]) -> None:
    for step in steps or []:
        if not isinstance(step, dict) or "id" not in step:
            continue
        path = f"{prefix}{step['id']}"
        nested = {}
        for key in ("then", "else", "default", "steps", "on_timeout"):
            if isinstance(step.get(key), list):
                nested[key] = step[key]
        for i, case in enumerate(step.get("cases") or []):
            if isinstance(case, dict):
                nested[f"cases[{i}]"] = case.get("steps") or []
        out[path] = {k: v for k, v in step.items() if k not in nested and k != "cases"}
        if step.get("cases"):
            out[path]["cases"] = [c.get("when") for c in step["cases"] if isinstance(c, dict)]
        for _key, children in nested.items():
            _steps(children, f"{path}/", out)


def definition_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Step paths added, removed and changed (by their own fields), and whether triggers changed."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    _steps(old.get("steps") or [], "", before)
    _steps(new.get("steps") or [], "", after)
    return {
        "steps_added": sorted(set(after) - set(before)),
        "steps_removed": sorted(set(before) - set(after)),
        "steps_changed": sorted(p for p in set(before) & set(after) if before[p] != after[p]),
        "triggers_changed": (old.get("triggers") or []) != (new.get("triggers") or []),
        "output_changed": old.get("output") != new.get("output"),
    }
