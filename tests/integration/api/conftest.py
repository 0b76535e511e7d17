"""API fixtures: the real app over ASGI against the real (SQLite or PostgreSQL) database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from crossdock.bootstrap import Container
from crossdock.web.app import create_app
from tests.factories import World, make_world


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(container)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crossdock.test") as c:
        yield c


@pytest.fixture
async def world(container: Container) -> World:
    return await make_world(container)
