"""`crossdock partner|merchant|user|token ...`: administer tenants and identities on this installation.

These commands talk to the database directly as the platform operator (the same code paths as the
API, audited as actor `system`), which is how the first administrator token is issued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.bootstrap import Container, build_container
from crossdock.cli.output import emit, run
from crossdock.core.context import Actor
from crossdock.core.settings import Settings
from crossdock.identity import service as identity
from crossdock.identity.schemas import RoleBindingCreate, TokenCreate, TokenCreated, TokenOut, UserCreate, UserOut
from crossdock.tenants import service as tenants
from crossdock.tenants.models import TenantKind
from crossdock.tenants.schemas import MerchantCreate, MerchantOut, PartnerCreate, PartnerOut

partner_app = typer.Typer(help="Partners: create and list.", no_args_is_help=True)
merchant_app = typer.Typer(help="Merchants: create and list.", no_args_is_help=True)
user_app = typer.Typer(help="Users: create, list, grant roles.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DbOpt = Annotated[str | None, typer.Option("--database", help="Database URL (default: CROSSDOCK_DATABASE_URL).")]
LimitOpt = Annotated[int, typer.Option(help="Most rows to show.")]


def _container(database: str | None) -> Container:
    settings = Settings(database_url=database) if database else Settings()
    return build_container(settings)


@asynccontextmanager
async def operator_session(database: str | None) -> AsyncIterator[tuple[Container, AsyncSession, Actor]]:
    """A unit of work as the platform operator, on the configured (or given) database."""
    c = _container(database)
    actor = Actor.system()
    try:
        async with c.db.session(actor.scope) as s:
            yield c, s, actor
    finally:
        await c.close()


@partner_app.command("create")
def partner_create(
    name: str, slug: Annotated[str | None, typer.Option()] = None, json: JsonOpt = False, database: DbOpt = None
) -> None:
    """Create a partner."""

    async def go() -> PartnerOut:
        async with operator_session(database) as (c, s, actor):
            return PartnerOut.model_validate(
                await tenants.create_partner(s, actor, PartnerCreate(name=name, slug=slug))
            )

    emit(run(go()), as_json=json, columns=["id", "name", "slug", "status"])


@partner_app.command("list")
def partner_list(json: JsonOpt = False, database: DbOpt = None, limit: LimitOpt = 100) -> None:
    """List partners."""
    emit(
        run(_list(database, TenantKind.PARTNER, PartnerOut, limit)),
        as_json=json,
        columns=["id", "name", "slug", "status"],
    )


@merchant_app.command("create")
def merchant_create(
    partner_id: str,
    name: str,
    slug: Annotated[str | None, typer.Option()] = None,
    json: JsonOpt = False,
    database: DbOpt = None,
) -> None:
    """Create a merchant under a partner (with sandbox and production environments)."""

    async def go() -> MerchantOut:
        async with operator_session(database) as (c, s, actor):
            body = MerchantCreate(partner_id=partner_id, name=name, slug=slug)
            return MerchantOut.model_validate(await tenants.create_merchant(s, actor, body))

    emit(run(go()), as_json=json, columns=["id", "partner_id", "name", "slug", "status"])


@merchant_app.command("list")
def merchant_list(json: JsonOpt = False, database: DbOpt = None, limit: LimitOpt = 100) -> None:
    """List merchants."""
    emit(
        run(_list(database, TenantKind.MERCHANT, MerchantOut, limit)),
        as_json=json,
        columns=["id", "partner_id", "name", "slug", "status"],
    )


async def _list(
    database: str | None, kind: TenantKind, schema: type[PartnerOut] | type[MerchantOut], limit: int
) -> list[PartnerOut | MerchantOut]:
    async with operator_session(database) as (c, s, actor):
        rows, _ = await tenants.list_tenants(s, kind, limit=limit, cursor=None)
        return [schema.model_validate(r) for r in rows]


@user_app.command("create")
def user_create(
    email: str,
    name: str,
    role: Annotated[str | None, typer.Option(help="Grant this role at the user's home scope.")] = None,
    partner_id: Annotated[str | None, typer.Option()] = None,
    merchant_id: Annotated[str | None, typer.Option()] = None,
    json: JsonOpt = False,
    database: DbOpt = None,
) -> None:
    """Create a user (at a merchant, a partner, or the platform) and optionally grant a role."""

    async def go() -> UserOut:
        async with operator_session(database) as (c, s, actor):
            user = await identity.create_user(
                s, actor, UserCreate(email=email, name=name, partner_id=partner_id, merchant_id=merchant_id)
            )
            if role:
                level_partner = user.partner_id if role.startswith("partner") else None
                level_merchant = user.merchant_id if role.startswith("merchant") else None
                await identity.create_role_binding(
                    s,
                    actor,
                    RoleBindingCreate(
                        principal_id=user.id, role=role, partner_id=level_partner, merchant_id=level_merchant
                    ),
                )
            return UserOut.model_validate(user)

    emit(run(go()), as_json=json, columns=["id", "email", "name", "partner_id", "merchant_id"])


@user_app.command("list")
def user_list(json: JsonOpt = False, database: DbOpt = None, limit: LimitOpt = 100) -> None:
    """List users."""

    async def go() -> list[UserOut]:
        async with operator_session(database) as (c, s, actor):
            rows, _ = await identity.list_users(s, limit=limit, cursor=None)
            return [UserOut.model_validate(r) for r in rows]

    emit(run(go()), as_json=json, columns=["id", "email", "name", "status", "partner_id", "merchant_id"])


@token_app.command("create")
def token_create(
    principal_id: str,
    name: Annotated[str, typer.Option()] = "cli",
    days: Annotated[int | None, typer.Option(help="Lifetime in days.")] = None,
    json: JsonOpt = False,
    database: DbOpt = None,
) -> None:
    """Issue an API token for a user or service account. The secret is printed once."""

    async def go() -> TokenCreated:
        async with operator_session(database) as (c, s, actor):
            token, secret = await identity.create_token(
                s,
                actor,
                TokenCreate(principal_id=principal_id, name=name, expires_in_days=days),
                default_ttl_days=c.settings.token_ttl_days,
            )
            return TokenCreated(**TokenOut.model_validate(token).model_dump(), token=secret)

    emit(run(go()), as_json=json, columns=["id", "principal_id", "expires_at", "token"])


@token_app.command("list")
def token_list(
    principal_id: Annotated[str | None, typer.Option()] = None,
    json: JsonOpt = False,
    database: DbOpt = None,
    limit: LimitOpt = 100,
) -> None:
    """List tokens (never their secrets)."""

    async def go() -> list[TokenOut]:
        async with operator_session(database) as (c, s, actor):
            rows, _ = await identity.list_tokens(s, limit=limit, cursor=None, principal_id=principal_id)
            return [TokenOut.model_validate(r) for r in rows]

    emit(run(go()), as_json=json, columns=["id", "principal_id", "name", "prefix", "expires_at", "revoked_at"])


@token_app.command("revoke")
def token_revoke(token_id: str, json: JsonOpt = False, database: DbOpt = None) -> None:
    """Revoke a token; it stops working at once."""

    async def go() -> TokenOut:
        async with operator_session(database) as (c, s, actor):
            return TokenOut.model_validate(await identity.revoke_token(s, actor, token_id))

    emit(run(go()), as_json=json, columns=["id", "principal_id", "revoked_at"])
