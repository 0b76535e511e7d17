"""The action registry: name → declared input/output schema, idempotency key template, callable.

Connectors register their actions here (`registry.register(ActionSpec(...))`). Each call gets an
`ActionContext` with the idempotency key the engine derived from the run, the step path and the
business key, a rate-budget `acquire(account)` and the effect ledger. Built-ins: `http.request`,
`log` and `fail`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.core.errors import CrossdockError, ErrorCode

log = logging.getLogger("crossdock.engine.actions")

DEFAULT_KEY_TEMPLATE = "{run_id}:{step_path}:{business_key}"


class StepFailed(CrossdockError):
    """A deliberate, classified step failure (e.g. the `fail` action); terminal unless `retryable`."""

    code = ErrorCode.BAD_REQUEST

    def __init__(self, message: str, *, category: str = "unknown", retryable: bool = False) -> None:
        super().__init__(message, details={"category": category})
        self.category = category
        self.retryable = retryable


class RegistryConflict(CrossdockError):
    code = ErrorCode.CONFIGURATION


@dataclass
class ActionContext:
    """What an action sees of the engine while it runs."""

    run_id: str
    step_path: str
    attempt: int
    partner_id: str | None
    merchant_id: str | None
    idempotency_key: str
    http: aiohttp.ClientSession
    acquire: Callable[[str], Awaitable[float]]
    ledger: Callable[[str], Awaitable[Any | None]]
    extras: dict[str, Any] = field(default_factory=dict)


ActionFn = Callable[[ActionContext, Any], Awaitable[Any]]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    fn: ActionFn
    input_schema: type[BaseModel] | None = None
    output_schema: type[BaseModel] | None = None
    idempotency_key: str = DEFAULT_KEY_TEMPLATE
    effect: bool = True  # has an external effect: journalled before the next step starts
    description: str = ""

    def key(self, run_id: str, step_path: str, business_key: Any) -> str:
        bk = "" if business_key is None else str(business_key)
        return self.idempotency_key.format(run_id=run_id, step_path=step_path, business_key=bk, action=self.name)

    def validate_input(self, value: Any) -> Any:
        if self.input_schema is None:
            return value
        try:
            return self.input_schema.model_validate(value).model_dump(mode="json", exclude_none=True, by_alias=True)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            raise StepFailed(f"Input of action {self.name!r} is not valid: {problems}", category="validation") from exc

    def validate_output(self, value: Any) -> Any:
        if self.output_schema is None:
            return value
        return self.output_schema.model_validate(value).model_dump(mode="json")


class ActionRegistry:
    """Actions by name; a conflicting registration fails loudly."""

    def __init__(self) -> None:
        self._specs: dict[str, ActionSpec] = {}

    def register(self, spec: ActionSpec, *, replace: bool = False) -> ActionSpec:
        if spec.name in self._specs and not replace and self._specs[spec.name] is not spec:
            raise RegistryConflict(f"Action {spec.name!r} is already registered; pick another name.")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> ActionSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise CrossdockError(f"Unknown action {name!r}.", code=ErrorCode.INVALID_FLOW) from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def names(self) -> list[str]:
        return sorted(self._specs)


# --- built-ins -------------------------------------------------------------------------------


class HttpRequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "POST"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json")
    body: str | None = None
    timeout_s: float = Field(30.0, gt=0, le=600)


@functools.lru_cache(maxsize=64)
def _timeout(total: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total)  # immutable: one per distinct timeout, not one per request


async def http_request(ctx: ActionContext, data: Any) -> Any:
    """Send one HTTP request with an `Idempotency-Key` header; 5xx/429/network errors are transient."""
    headers = {"Idempotency-Key": ctx.idempotency_key, **(data.get("headers") or {})}
    kwargs: dict[str, Any] = {"headers": headers, "timeout": _timeout(data.get("timeout_s", 30.0))}
    if data.get("json") is not None:
        kwargs["data"] = orjson.dumps(data["json"])
        headers.setdefault("Content-Type", "application/json")
    elif data.get("body") is not None:
        kwargs["data"] = data["body"]
    url = data["url"]
    try:
        async with ctx.http.request(data.get("method", "POST"), url, **kwargs) as resp:
            status = resp.status
            raw = await resp.read()
            content_type = resp.headers.get("content-type", "")
            retry_after = resp.headers.get("retry-after")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ConnectorError(
            f"HTTP request to {url} failed: {type(exc).__name__}",
            kind=FailureKind.TRANSIENT,
            category=FailureCategory.CONNECTION,
            system="http",
        ) from exc
    text = raw.decode(errors="replace")
    if status == 429 or status >= 500:
        raise ConnectorError(
            f"HTTP {status} from {url}",
            kind=FailureKind.TRANSIENT,
            category=FailureCategory.RATE_LIMIT if status == 429 else FailureCategory.CONNECTION,
            system="http",
            status=status,
            retry_after=float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None,
        )
    if status >= 400:
        raise ConnectorError(
            f"HTTP {status} from {url}: {text[:200]}",
            kind=FailureKind.DATA,
            category=FailureCategory.VALIDATION,
            system="http",
            status=status,
        )
    body: Any = text
    if content_type.startswith("application/json") and raw:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = text
    return {"status": status, "body": body}


async def log_action(ctx: ActionContext, data: Any) -> Any:
    message = data.get("message", "") if isinstance(data, dict) else str(data)
    log.info("flow log: %s", message, extra={"run_id": ctx.run_id, "step": ctx.step_path})
    return {"logged": message}


async def fail_action(ctx: ActionContext, data: Any) -> Any:
    data = data if isinstance(data, dict) else {"message": str(data)}
    raise StepFailed(
        str(data.get("message", "The flow failed on purpose.")),
        category=str(data.get("category", "unknown")),
        retryable=bool(data.get("retryable", False)),
    )


def builtin_actions() -> ActionRegistry:
    """A registry holding the built-in actions."""
    reg = ActionRegistry()
    reg.register(
        ActionSpec(
            "http.request", http_request, HttpRequestInput, description="Send an HTTP request (idempotency key header)."
        )
    )
    reg.register(ActionSpec("log", log_action, effect=False, description="Write a message to the run's log."))
    reg.register(ActionSpec("fail", fail_action, effect=False, description="Fail the step with a classified error."))
    return reg
