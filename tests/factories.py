"""Test factories: build tenants, principals and tokens through the real services."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

from crossdock.bootstrap import Container
from crossdock.core.context import Actor
from crossdock.identity import service as identity
from crossdock.identity.schemas import RoleBindingCreate, ServiceAccountCreate, TokenCreate, UserCreate
from crossdock.tenants import service as tenants
from crossdock.tenants.schemas import MerchantCreate, PartnerCreate

_seq = count(1)


@dataclass
class World:
    """Two partners; P1 has merchants M1a and M1b, P2 has M2a. One token per interesting caller."""

    ids: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, caller: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[caller]}"}


async def make_user(
    container: Container,
    world: World,
    key: str,
    role: str,
    *,
    partner: str | None = None,
    merchant: str | None = None,
    token_days: int = 30,
) -> str:
    actor = Actor.system()
    async with container.db.session(actor.scope) as s:
        user = await identity.create_user(
            s,
            actor,
            UserCreate(
                email=f"{key}-{next(_seq)}@example.test",
                name=key,
                partner_id=world.ids.get(partner) if partner else None,
                merchant_id=world.ids.get(merchant) if merchant else None,
            ),
        )
        level = role.split("_")[0]
        await identity.create_role_binding(
            s,
            actor,
            RoleBindingCreate(
                principal_id=user.id,
                role=role,
                partner_id=user.partner_id if level == "partner" else None,
                merchant_id=user.merchant_id if level == "merchant" else None,
            ),
        )
        _tok, secret = await identity.create_token(
            s, actor, TokenCreate(principal_id=user.id), default_ttl_days=token_days
        )
    world.ids[f"user:{key}"] = user.id
    world.tokens[key] = secret
    return user.id


async def make_world(container: Container) -> World:
    world = World()
    actor = Actor.system()
    async with container.db.session(actor.scope) as s:
        for p in ("P1", "P2"):
            world.ids[p] = (await tenants.create_partner(s, actor, PartnerCreate(name=f"Partner {p}"))).id
        for m, p in (("M1a", "P1"), ("M1b", "P1"), ("M2a", "P2")):
            merchant = await tenants.create_merchant(s, actor, MerchantCreate(partner_id=world.ids[p], name=m))
            world.ids[m] = merchant.id
        sa = await identity.create_service_account(
            s, actor, ServiceAccountCreate(name="etl", merchant_id=world.ids["M1a"])
        )
        world.ids["sa:M1a"] = sa.id
    await make_user(container, world, "platform", "platform_admin")
    await make_user(container, world, "p1_admin", "partner_admin", partner="P1")
    await make_user(container, world, "p1_operator", "partner_operator", partner="P1")
    await make_user(container, world, "p2_admin", "partner_admin", partner="P2")
    await make_user(container, world, "m1a_admin", "merchant_admin", partner="P1", merchant="M1a")
    await make_user(container, world, "m1a_viewer", "merchant_viewer", partner="P1", merchant="M1a")
    await make_user(container, world, "m1b_admin", "merchant_admin", partner="P1", merchant="M1b")
    return world
