"""Fixtures for exception-desk tests: the API with the cases router, failures and cases made directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import count
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.cases import service
from crossdock.cases.api import router as cases_router
from crossdock.cases.failures import Failure
from crossdock.cases.models import Case
from crossdock.core.context import Actor
from crossdock.core.tenancy import Scope
from crossdock.engine.core import Engine, engine_of
from crossdock.governance.models import AuditEvent
from tests.factories import World

SYSTEM = Actor.system()
_runs = count(1)


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """The real app plus the cases router (the lead adds it to ROUTERS), over ASGI."""
    from crossdock.web.app import create_app

    app = create_app(container)
    if not any(getattr(r, "path", "") == "/v1/cases" for r in app.routes):
        app.include_router(cases_router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crossdock.test") as c:
        yield c


@pytest.fixture
async def engine(container: Container) -> AsyncIterator[Engine]:
    eng = engine_of(container)
    yield eng
    await eng.close()


def failure(world: World, merchant: str, category: str = "sku_not_found", cause: str = "SKU X-1", **kw: Any) -> Failure:
    """A failure of a (fake) run of `merchant` (a World key such as "M1a")."""
    partner = "P2" if merchant == "M2a" else "P1"
    values: dict[str, Any] = {
        "partner_id": world.ids[partner],
        "merchant_id": world.ids[merchant],
        "category": category,
        "message": f"{category}: {cause}",
        "cause": cause,
        "run_id": f"run_{next(_runs):026d}",
        "step_path": "validate",
        "flow_id": "flw_test",
        "payload": {"sku": cause},
        "error": {"category": category},
    }
    values.update(kw)
    return Failure(**values)


async def open_case(container: Container, f: Failure, **kw: Any) -> Case:
    async with container.db.session(SYSTEM.scope) as s:
        return await service.open_or_group(s, f, **kw)


async def all_cases(container: Container) -> list[Case]:
    async with container.db.session(Scope.everything()) as s:
        return list((await s.scalars(select(Case).order_by(Case.id))).all())


async def audit_actions(container: Container, target_id: str | None = None) -> list[str]:
    """Audit actions on cases (oldest first), optionally for one case."""
    async with container.db.session(Scope.everything()) as s:
        stmt = select(AuditEvent.action).where(AuditEvent.target_type == "case").order_by(AuditEvent.at, AuditEvent.id)
        if target_id:
            stmt = stmt.where(AuditEvent.target_id == target_id)
        return list((await s.scalars(stmt)).all())
