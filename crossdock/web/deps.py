"""FastAPI dependencies: the container, the authenticated principal, and permission checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from crossdock.bootstrap import Container
from crossdock.core.context import Actor
from crossdock.core.logging import request_id_var
from crossdock.core.tenancy import Scope
from crossdock.identity.auth import Principal, authenticate
from crossdock.identity.permissions import Permission


async def get_container(request: Request) -> Container:
    # async on purpose: FastAPI runs plain `def` dependencies in a thread pool (measured ~13% of a
    # webhook's CPU for this one-liner).
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_principal(request: Request, container: ContainerDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    bearer = value.strip() if scheme.lower() == "bearer" else None
    async with container.db.session(Scope.nothing()) as session:
        return await authenticate(session, bearer)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Callable[..., Awaitable[Actor]]:
    """Declare the permission an endpoint needs; the actor it yields is scoped to where it is held."""

    async def dependency(principal: PrincipalDep) -> Actor:
        return principal.actor(permission, request_id_var.get())

    dependency.__name__ = f"require_{permission.value.replace('.', '_')}"
    return dependency
