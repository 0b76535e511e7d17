"""The FastAPI app factory: one app per container, with every domain's router mounted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from crossdock import __version__
from crossdock.bootstrap import Container
from crossdock.cases.api import router as cases_router
from crossdock.connections.api import router as connections_router
from crossdock.connectors.intake_api import router as connector_hooks_router
from crossdock.connectors.intake_fast import ShopifyIntakeRoute
from crossdock.engine.api import hooks_router
from crossdock.engine.api import router as engine_router
from crossdock.flows.api import router as flows_router
from crossdock.governance.api import router as audit_router
from crossdock.identity.api import router as identity_router
from crossdock.tenants.api import router as tenants_router
from crossdock.web.errors import install_error_handlers
from crossdock.web.health import router as health_router
from crossdock.web.middleware import RequestContextMiddleware

ROUTERS: list[APIRouter] = [
    health_router,
    tenants_router,
    identity_router,
    audit_router,
    connections_router,
    engine_router,
    hooks_router,
    connector_hooks_router,
    cases_router,
    flows_router,
]

Hook = Callable[[Container], Awaitable[None]]


def create_app(
    container: Container, *, on_startup: list[Hook] | None = None, on_shutdown: list[Hook] | None = None
) -> FastAPI:
    """Build the API for `container`. Hooks start and stop in-process work (workers, scheduler)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup or []:
            await hook(container)
        try:
            yield
        finally:
            for hook in on_shutdown or []:
                await hook(container)

    app = FastAPI(
        title="Crossdock API",
        version=__version__,
        description="Governed workflow automation between ecommerce storefronts and ERPs.",
        lifespan=lifespan,
        telemetry=None if container.settings.api.opentelemetry else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.container = container
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    # Inside the request context (ids, limits, metrics), in front of the router: see intake_fast.
    app.add_middleware(ShopifyIntakeRoute, container=container)
    app.add_middleware(
        RequestContextMiddleware, max_body_bytes=container.settings.api.max_body_bytes, metrics=container.metrics
    )
    return app
