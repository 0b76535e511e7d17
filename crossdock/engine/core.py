"""The per-process engine object: registries, compiled-flow cache, rate budgets, shared clients.

One `Engine` lives in each container (`engine_of(container)`), so no module holds global state.
Other domains extend it through its registries: actions (connectors), custom step types (the
`crossdock.steps` entry-point group), webhook verifiers, pollers and the raise-case hook.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import aiohttp
from pydantic import BaseModel
from sqlalchemy import select

from crossdock.core.db import Database
from crossdock.core.metrics import Metrics
from crossdock.core.settings import Settings
from crossdock.engine.actions import ActionContext, ActionRegistry, RegistryConflict, builtin_actions
from crossdock.engine.compiled import CompiledFlow, FlowCache, compile_flow
from crossdock.engine.definitions import FlowDefinition, validate_definition
from crossdock.engine.models import FlowVersion
from crossdock.engine.ratelimit import RateBudgets

log = logging.getLogger("crossdock.engine")

ENTRY_POINT_GROUP = "crossdock.steps"


@dataclass(frozen=True)
class VerifiedEvent:
    """What a webhook verifier extracts from a request it accepted."""

    dedup_key: str
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)


Verifier = Callable[[bytes, Mapping[str, str], dict[str, Any]], Awaitable[VerifiedEvent] | VerifiedEvent]
Poller = Callable[[dict[str, Any], Any], Awaitable[tuple[list[tuple[str, Any]], Any]]]
CaseRaiser = Callable[[ActionContext, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class CustomStepSpec:
    """A custom Python step type (the small SDK): `async fn(ctx, input) -> output`."""

    name: str
    fn: Callable[[ActionContext, Any], Awaitable[Any]]
    input_schema: type[BaseModel] | None = None
    effect: bool = True


class Engine:
    """Registries and shared state of the engine in one process."""

    def __init__(self, db: Database, metrics: Metrics, settings: Settings) -> None:
        self.db = db
        self.metrics = metrics
        self.settings = settings
        self.actions: ActionRegistry = builtin_actions()
        self.custom_steps: dict[str, CustomStepSpec] = {}
        self.verifiers: dict[str, Verifier] = {}
        self.pollers: dict[str, Poller] = {}
        self.case_raiser: CaseRaiser | None = None
        self.flows = FlowCache()
        self.rates = RateBudgets(db, metrics)
        self._http: aiohttp.ClientSession | None = None
        self._entry_points_loaded = False
        self._compiling: dict[str, asyncio.Lock] = {}
        from crossdock.engine.intake import EndpointCache, IntakeBatcher, generic_verifier

        self.verifiers["generic"] = generic_verifier
        self.intake = IntakeBatcher(db, metrics=metrics, concurrency=settings.api.intake_concurrency)
        self.endpoints = EndpointCache(db)

    # -- registries ----------------------------------------------------------------------------

    def register_step(self, spec: CustomStepSpec) -> None:
        if spec.name in self.custom_steps and self.custom_steps[spec.name] is not spec:
            raise RegistryConflict(f"Custom step type {spec.name!r} is already registered.")
        self.custom_steps[spec.name] = spec

    def register_webhook_verifier(self, kind: str, fn: Verifier) -> None:
        """fn(raw_body, headers, endpoint) -> VerifiedEvent; raise CrossdockError(INVALID_SIGNATURE) to refuse."""
        self.verifiers[kind] = fn

    def register_poller(self, name: str, fn: Poller) -> None:
        """fn(config, cursor) -> ([(dedup_key, payload), ...], new_cursor)."""
        self.pollers[name] = fn

    def set_case_raiser(self, fn: CaseRaiser) -> None:
        """The exception desk's hook; without one, raise_case marks the run needs_attention."""
        self.case_raiser = fn

    def load_entry_points(self) -> None:
        """Load custom steps from the `crossdock.steps` group; each failure is logged, not fatal."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                spec = ep.load()
                if callable(spec) and not isinstance(spec, CustomStepSpec):
                    spec = spec()
                if not isinstance(spec, CustomStepSpec):
                    raise TypeError(f"entry point {ep.name!r} did not give a CustomStepSpec")
                self.register_step(spec)
            except Exception:
                log.exception("could not load custom step %r", ep.name)

    def custom_input_schema(self, name: str) -> type[BaseModel] | None:
        spec = self.custom_steps.get(name)
        if spec is None:
            return None
        return spec.input_schema or BaseModel

    def validate(self, data: dict[str, Any] | str) -> FlowDefinition:
        self.load_entry_points()
        return validate_definition(data, custom_steps=self.custom_input_schema, actions=self.actions.__contains__)

    # -- shared state --------------------------------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        """One pooled HTTP client per process, reused by every action.

        aiohttp rather than httpx here: on the hot path of `http.request` httpx/httpcore spent about
        half of a worker's CPU (its pool scans every connection per request); aiohttp's pool does not.
        Connector clients keep httpx, whose calls are paced by rate budgets anyway.

        No cookie jar: the session is shared by every merchant's runs, so a cookie one endpoint sets
        must not ride along on another run's request (and the jar's per-request filtering is saved).
        """
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=30),
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
            )
        return self._http

    async def compiled(self, version_id: str) -> CompiledFlow:
        flow = self.flows.get(version_id)
        if flow is not None:
            return flow
        lock = self._compiling.setdefault(version_id, asyncio.Lock())
        async with lock:  # a claim of 100 runs of a new version compiles it once, not 100 times
            flow = self.flows.get(version_id)
            if flow is None:
                flow = await self._compile(version_id)
        self._compiling.pop(version_id, None)
        return flow

    async def _compile(self, version_id: str) -> CompiledFlow:
        async with self.db.reads.connect() as conn:
            row = (
                await conn.execute(
                    select(FlowVersion.flow_id, FlowVersion.definition).where(FlowVersion.id == version_id)
                )
            ).one()
        flow = compile_flow(version_id, row.flow_id, self.validate(row.definition))
        self.flows.put(flow)
        return flow

    async def close(self) -> None:
        await self.intake.close()
        if self._http is not None:
            await self._http.close()
            self._http = None


def engine_of(container: Any) -> Engine:
    """The container's engine, made on first use."""
    engine = container.extras.get("engine")
    if engine is None:
        engine = Engine(container.db, container.metrics, container.settings)
        container.extras["engine"] = engine
        # Domains that plug into the engine (actions, the case raiser) are declared by bootstrap.
        for setup in container.extras.get("engine.setup", ()):
            setup(engine, container)
    assert isinstance(engine, Engine)
    return engine
