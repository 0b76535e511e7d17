"""What a connector is: a system id, config and secrets schemas, and an optional reachability probe.

Built-in connectors are listed in `crossdock.connectors.builtin`; third-party ones come through the
entry-point group `crossdock.connectors`, each loaded with its own error handling.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from crossdock.core.errors import CrossdockError, ErrorCode, ValidationFailed

log = logging.getLogger("crossdock.connectors")


@dataclass(frozen=True)
class ProbeResult:
    """The diagnosis `crossdock connection test` prints."""

    ok: bool
    summary: str
    checks: list[dict[str, Any]] = field(default_factory=list)


Probe = Callable[[BaseModel, BaseModel], Awaitable[ProbeResult]]


@dataclass(frozen=True)
class ConnectorSpec:
    system: str
    title: str
    config_model: type[BaseModel]
    secrets_model: type[BaseModel]
    probe: Probe | None = None
    webhook_kind: str | None = None

    def parse(self, config: dict[str, Any], secrets: dict[str, Any]) -> tuple[BaseModel, BaseModel]:
        """Validate a connection's config and secrets, naming the bad field without echoing secrets."""
        from pydantic import ValidationError

        try:
            cfg = self.config_model.model_validate(config)
        except ValidationError as exc:
            raise _invalid(self.system, "config", exc, show_input=True) from None
        try:
            sec = self.secrets_model.model_validate(secrets)
        except ValidationError as exc:
            raise _invalid(self.system, "secrets", exc, show_input=False) from None
        return cfg, sec


def _invalid(system: str, part: str, exc: Any, *, show_input: bool) -> ValidationFailed:
    problems = [
        {
            "path": ".".join([part, *map(str, e["loc"])]),
            "problem": e["msg"],
            **({"input": e.get("input")} if show_input else {}),
        }
        for e in exc.errors()
    ]
    summary = "; ".join(f"{p['path']}: {p['problem']}" for p in problems[:5])
    return ValidationFailed(f"Invalid {system} connection {part}: {summary}.", details={"errors": problems})


class ConnectorRegistry:
    """System id → spec. Registering the same id twice is an error, never a silent override."""

    def __init__(self) -> None:
        self._specs: dict[str, ConnectorSpec] = {}
        self.load_errors: dict[str, str] = {}

    def register(self, spec: ConnectorSpec) -> None:
        if spec.system in self._specs and self._specs[spec.system] is not spec:
            raise CrossdockError(f"Connector {spec.system!r} is registered twice.", code=ErrorCode.CONFIGURATION)
        self._specs[spec.system] = spec

    def get(self, system: str) -> ConnectorSpec:
        try:
            return self._specs[system]
        except KeyError:
            raise ValidationFailed(
                f"Unknown system {system!r}; one of: {', '.join(sorted(self._specs))}.", details={"system": system}
            ) from None

    def systems(self) -> list[str]:
        return sorted(self._specs)

    def load_entry_points(self, group: str = "crossdock.connectors") -> None:
        for ep in entry_points(group=group):
            try:
                spec = ep.load()
                self.register(spec() if callable(spec) else spec)
            except Exception as exc:  # one broken plug-in must not take down the others
                self.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                log.error("connector plug-in failed to load", extra={"entry_point": ep.name, "error": str(exc)})
