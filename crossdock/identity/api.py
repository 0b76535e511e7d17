"""HTTP routes for users, service accounts, tokens, roles and role bindings. Thin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from crossdock.core.context import Actor
from crossdock.core.pagination import Page
from crossdock.core.repository import get_visible
from crossdock.identity import service
from crossdock.identity.models import ApiToken, RoleBinding, ServiceAccount, User
from crossdock.identity.permissions import ROLES
from crossdock.identity.permissions import Permission as P
from crossdock.identity.schemas import (
    MeOut,
    RoleBindingCreate,
    RoleBindingOut,
    RoleOut,
    ServiceAccountCreate,
    ServiceAccountOut,
    ServiceAccountUpdate,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    UserUpdate,
)
from crossdock.web.deps import ContainerDep, PrincipalDep, require
from crossdock.web.params import Cursor, Limit, to_page

router = APIRouter(prefix="/v1", tags=["identity"])

ReadPrincipals = Annotated[Actor, Depends(require(P.PRINCIPALS_READ))]
ManagePrincipals = Annotated[Actor, Depends(require(P.PRINCIPALS_MANAGE))]
ReadTokens = Annotated[Actor, Depends(require(P.TOKENS_READ))]
ManageTokens = Annotated[Actor, Depends(require(P.TOKENS_MANAGE))]
ReadRoles = Annotated[Actor, Depends(require(P.ROLES_READ))]
ManageRoles = Annotated[Actor, Depends(require(P.ROLES_MANAGE))]


@router.get("/me", response_model=MeOut, tags=["identity"])
async def me(principal: PrincipalDep) -> MeOut:
    grants = [
        {
            "role": g.role,
            "partner_ids": ",".join(sorted(g.scope.partner_ids)) or None,
            "merchant_ids": ",".join(sorted(g.scope.merchant_ids)) or None,
            "platform": "true" if g.scope.platform else None,
        }
        for g in principal.grants
    ]
    return MeOut(principal_type=principal.type, principal_id=principal.id, grants=grants)


@router.get("/roles", response_model=list[RoleOut])
async def list_roles(_principal: PrincipalDep) -> list[RoleOut]:
    return [
        RoleOut(
            name=r.name,
            level=r.level.value,
            description=r.description,
            permissions=sorted(p.value for p in r.permissions),
        )
        for r in ROLES.values()
    ]


# Users


@router.get("/users", response_model=Page[UserOut])
async def list_users(
    c: ContainerDep,
    actor: ReadPrincipals,
    limit: Limit = 50,
    cursor: Cursor = None,
    email: str | None = None,
    partner_id: str | None = None,
    merchant_id: str | None = None,
    status: str | None = None,
) -> Page[UserOut]:
    async with c.db.session(actor.scope) as s:
        rows, nxt = await service.list_users(
            s, limit=limit, cursor=cursor, email=email, partner_id=partner_id, merchant_id=merchant_id, status=status
        )
        return to_page(UserOut, rows, nxt)


@router.post("/users", response_model=UserOut, status_code=201)
async def create_user(body: UserCreate, c: ContainerDep, actor: ManagePrincipals) -> UserOut:
    async with c.db.session(actor.scope) as s:
        return UserOut.model_validate(await service.create_user(s, actor, body))


@router.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: str, c: ContainerDep, actor: ReadPrincipals) -> UserOut:
    async with c.db.session(actor.scope) as s:
        return UserOut.model_validate(await get_visible(s, User, user_id, "user"))


@router.patch("/users/{user_id}", response_model=UserOut)
async def update_user(user_id: str, body: UserUpdate, c: ContainerDep, actor: ManagePrincipals) -> UserOut:
    async with c.db.session(actor.scope) as s:
        await get_visible(s, User, user_id, "user")
        return UserOut.model_validate(await service.update_principal(s, actor, user_id, body))


@router.delete("/users/{user_id}", response_model=UserOut, summary="Disable a user")
async def disable_user(user_id: str, c: ContainerDep, actor: ManagePrincipals) -> UserOut:
    async with c.db.session(actor.scope) as s:
        await get_visible(s, User, user_id, "user")
        return UserOut.model_validate(await service.update_principal(s, actor, user_id, UserUpdate(status="disabled")))


# Service accounts


@router.get("/service-accounts", response_model=Page[ServiceAccountOut])
async def list_service_accounts(
    c: ContainerDep,
    actor: ReadPrincipals,
    limit: Limit = 50,
    cursor: Cursor = None,
    partner_id: str | None = None,
    merchant_id: str | None = None,
    status: str | None = None,
) -> Page[ServiceAccountOut]:
    async with c.db.session(actor.scope) as s:
        rows, nxt = await service.list_service_accounts(
            s, limit=limit, cursor=cursor, partner_id=partner_id, merchant_id=merchant_id, status=status
        )
        return to_page(ServiceAccountOut, rows, nxt)


@router.post("/service-accounts", response_model=ServiceAccountOut, status_code=201)
async def create_service_account(
    body: ServiceAccountCreate, c: ContainerDep, actor: ManagePrincipals
) -> ServiceAccountOut:
    async with c.db.session(actor.scope) as s:
        return ServiceAccountOut.model_validate(await service.create_service_account(s, actor, body))


@router.get("/service-accounts/{sa_id}", response_model=ServiceAccountOut)
async def get_service_account(sa_id: str, c: ContainerDep, actor: ReadPrincipals) -> ServiceAccountOut:
    async with c.db.session(actor.scope) as s:
        return ServiceAccountOut.model_validate(await get_visible(s, ServiceAccount, sa_id, "service account"))


@router.patch("/service-accounts/{sa_id}", response_model=ServiceAccountOut)
async def update_service_account(
    sa_id: str, body: ServiceAccountUpdate, c: ContainerDep, actor: ManagePrincipals
) -> ServiceAccountOut:
    async with c.db.session(actor.scope) as s:
        await get_visible(s, ServiceAccount, sa_id, "service account")
        return ServiceAccountOut.model_validate(await service.update_principal(s, actor, sa_id, body))


@router.delete("/service-accounts/{sa_id}", response_model=ServiceAccountOut, summary="Disable a service account")
async def disable_service_account(sa_id: str, c: ContainerDep, actor: ManagePrincipals) -> ServiceAccountOut:
    async with c.db.session(actor.scope) as s:
        await get_visible(s, ServiceAccount, sa_id, "service account")
        body = ServiceAccountUpdate(status="disabled")
        return ServiceAccountOut.model_validate(await service.update_principal(s, actor, sa_id, body))


# Tokens


@router.get("/tokens", response_model=Page[TokenOut])
async def list_tokens(
    c: ContainerDep,
    actor: ReadTokens,
    limit: Limit = 50,
    cursor: Cursor = None,
    principal_id: str | None = None,
    active: bool | None = None,
) -> Page[TokenOut]:
    async with c.db.session(actor.scope) as s:
        rows, nxt = await service.list_tokens(s, limit=limit, cursor=cursor, principal_id=principal_id, active=active)
        return to_page(TokenOut, rows, nxt)


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=201,
    description="Create a token. The secret is in the response once and never again.",
)
async def create_token(body: TokenCreate, c: ContainerDep, actor: ManageTokens) -> TokenCreated:
    async with c.db.session(actor.scope) as s:
        token, secret = await service.create_token(s, actor, body, default_ttl_days=c.settings.token_ttl_days)
        return TokenCreated(**TokenOut.model_validate(token).model_dump(), token=secret)


@router.get("/tokens/{token_id}", response_model=TokenOut)
async def get_token(token_id: str, c: ContainerDep, actor: ReadTokens) -> TokenOut:
    async with c.db.session(actor.scope) as s:
        return TokenOut.model_validate(await get_visible(s, ApiToken, token_id, "token"))


@router.delete("/tokens/{token_id}", response_model=TokenOut, summary="Revoke a token")
async def revoke_token(token_id: str, c: ContainerDep, actor: ManageTokens) -> TokenOut:
    async with c.db.session(actor.scope) as s:
        return TokenOut.model_validate(await service.revoke_token(s, actor, token_id))


# Role bindings


@router.get("/role-bindings", response_model=Page[RoleBindingOut])
async def list_role_bindings(
    c: ContainerDep,
    actor: ReadRoles,
    limit: Limit = 50,
    cursor: Cursor = None,
    principal_id: str | None = None,
    role: str | None = None,
    merchant_id: str | None = None,
) -> Page[RoleBindingOut]:
    async with c.db.session(actor.scope) as s:
        rows, nxt = await service.list_role_bindings(
            s, limit=limit, cursor=cursor, principal_id=principal_id, role=role, merchant_id=merchant_id
        )
        return to_page(RoleBindingOut, rows, nxt)


@router.post("/role-bindings", response_model=RoleBindingOut, status_code=201)
async def create_role_binding(body: RoleBindingCreate, c: ContainerDep, actor: ManageRoles) -> RoleBindingOut:
    async with c.db.session(actor.scope) as s:
        return RoleBindingOut.model_validate(await service.create_role_binding(s, actor, body))


@router.get("/role-bindings/{binding_id}", response_model=RoleBindingOut)
async def get_role_binding(binding_id: str, c: ContainerDep, actor: ReadRoles) -> RoleBindingOut:
    async with c.db.session(actor.scope) as s:
        return RoleBindingOut.model_validate(await get_visible(s, RoleBinding, binding_id, "role binding"))


@router.delete("/role-bindings/{binding_id}", status_code=204)
async def delete_role_binding(binding_id: str, c: ContainerDep, actor: ManageRoles) -> None:
    async with c.db.session(actor.scope) as s:
        await service.delete_role_binding(s, actor, binding_id)
