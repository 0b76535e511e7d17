"""HTTP routes for connections. Secrets are accepted on write and never returned."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from crossdock.connections import service
from crossdock.connections.schemas import ConnectionCreate, ConnectionOut, ConnectionTestOut, ConnectionUpdate
from crossdock.core.context import Actor
from crossdock.core.pagination import Page
from crossdock.identity.permissions import Permission as P
from crossdock.web.deps import ContainerDep, require
from crossdock.web.params import Cursor, Limit, to_page

router = APIRouter(prefix="/v1", tags=["connections"])
Read = Annotated[Actor, Depends(require(P.CONNECTIONS_READ))]
Manage = Annotated[Actor, Depends(require(P.CONNECTIONS_MANAGE))]


@router.get("/connections", response_model=Page[ConnectionOut])
async def list_connections(
    c: ContainerDep,
    actor: Read,
    limit: Limit = 50,
    cursor: Cursor = None,
    merchant_id: str | None = None,
    system: str | None = None,
    status: str | None = None,
    environment: str | None = None,
) -> Page[ConnectionOut]:
    async with c.db.session(actor.scope) as s:
        rows, nxt = await service.list_connections(
            s,
            limit=limit,
            cursor=cursor,
            merchant_id=merchant_id,
            system=system,
            status=status,
            environment=environment,
        )
        return to_page(ConnectionOut, rows, nxt)


@router.post("/connections", response_model=ConnectionOut, status_code=201)
async def create_connection(body: ConnectionCreate, c: ContainerDep, actor: Manage) -> ConnectionOut:
    async with c.db.session(actor.scope) as s:
        conn = await service.create_connection(s, actor, body, registry=c.connectors, box=c.secrets)
        return ConnectionOut.model_validate(conn)


@router.get("/connections/{connection_id}", response_model=ConnectionOut)
async def get_connection(connection_id: str, c: ContainerDep, actor: Read) -> ConnectionOut:
    async with c.db.session(actor.scope) as s:
        return ConnectionOut.model_validate(await service.get_connection(s, connection_id))


@router.patch("/connections/{connection_id}", response_model=ConnectionOut)
async def update_connection(
    connection_id: str, body: ConnectionUpdate, c: ContainerDep, actor: Manage
) -> ConnectionOut:
    async with c.db.session(actor.scope) as s:
        conn = await service.update_connection(s, actor, connection_id, body, registry=c.connectors, box=c.secrets)
        return ConnectionOut.model_validate(conn)


@router.post("/connections/{connection_id}/test", response_model=ConnectionTestOut)
async def test_connection(connection_id: str, c: ContainerDep, actor: Manage) -> ConnectionTestOut:
    async with c.db.session(actor.scope) as s:
        result = await service.test_connection(s, actor, connection_id, registry=c.connectors, box=c.secrets)
        return ConnectionTestOut(ok=result.ok, summary=result.summary, checks=result.checks)
