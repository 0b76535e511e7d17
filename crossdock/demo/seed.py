"""Seed the demo partner, its two merchants and one user per role. Safe to run on every start."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.core.context import Actor
from crossdock.identity import service as identity
from crossdock.identity.models import RoleBinding, User
from crossdock.identity.schemas import RoleBindingCreate, TokenCreate, UserCreate
from crossdock.tenants import service as tenants
from crossdock.tenants.models import Tenant, TenantKind
from crossdock.tenants.schemas import MerchantCreate, PartnerCreate

PARTNER = {
    "name": "Northwind Integration Partners",
    "slug": "northwind",
    "settings": {
        "brand": {
            "name": "Northwind Commerce Cloud",
            "primary_color": "#1f6feb",
            "email_sender": "ops@northwind.example",
        }
    },
}
MERCHANTS: list[dict[str, Any]] = [
    {
        "name": "Aurora Outfitters",
        "slug": "aurora",
        "settings": {
            "systems": {"storefront": "shopify", "erp": "businesscentral", "warehouse": "shipstation"},
            "segment": "d2c",
        },
    },
    {
        "name": "Cobalt Wholesale",
        "slug": "cobalt",
        "settings": {"systems": {"storefront": "shopify", "erp": "netsuite"}, "segment": "b2b"},
    },
]
# role -> (email, name, home merchant slug or None for the partner / platform)
USERS = {
    "platform_admin": ("platform@crossdock.local", "Pat Platform", None),
    "partner_admin": ("admin@northwind.example", "Nora Northwind", None),
    "partner_operator": ("ops@northwind.example", "Omar Operator", None),
    "merchant_admin": ("admin@aurora.example", "Ada Aurora", "aurora"),
    "merchant_approver": ("approver@aurora.example", "Avery Approver", "aurora"),
    "merchant_viewer": ("viewer@cobalt.example", "Cole Cobalt", "cobalt"),
}


@dataclass
class DemoTenants:
    partner_id: str
    merchants: dict[str, str] = field(default_factory=dict)  # slug -> id
    tokens: dict[str, str] = field(default_factory=dict)  # role -> secret
    users: dict[str, str] = field(default_factory=dict)  # role -> user id


async def seed_demo(container: Container, *, issue_tokens: bool = True) -> DemoTenants:
    """Create (or find) the demo tenants and users; issue one fresh token per role."""
    actor = Actor.system()
    async with container.db.session(actor.scope) as s:
        partner = await s.scalar(select(Tenant).where(Tenant.kind == TenantKind.PARTNER, Tenant.slug == "northwind"))
        if partner is None:
            partner = await tenants.create_partner(s, actor, PartnerCreate(**PARTNER))
        demo = DemoTenants(partner_id=partner.id)
        for spec in MERCHANTS:
            merchant = await s.scalar(
                select(Tenant).where(
                    Tenant.kind == TenantKind.MERCHANT, Tenant.parent_id == partner.id, Tenant.slug == spec["slug"]
                )
            )
            if merchant is None:
                merchant = await tenants.create_merchant(s, actor, MerchantCreate(partner_id=partner.id, **spec))
            demo.merchants[spec["slug"]] = merchant.id
        for role, (email, name, home) in USERS.items():
            user = await s.scalar(select(User).where(User.email == email))
            if user is None:
                merchant_id = demo.merchants.get(home) if home else None
                partner_id = partner.id if role.startswith(("partner", "merchant")) else None
                user = await identity.create_user(
                    s, actor, UserCreate(email=email, name=name, partner_id=partner_id, merchant_id=merchant_id)
                )
            demo.users[role] = user.id
            if await s.scalar(select(RoleBinding).where(RoleBinding.principal_id == user.id)) is None:
                scope_partner = partner.id if role.startswith("partner") else None
                scope_merchant = demo.merchants.get(home) if home else None
                await identity.create_role_binding(
                    s,
                    actor,
                    RoleBindingCreate(
                        principal_id=user.id, role=role, partner_id=scope_partner, merchant_id=scope_merchant
                    ),
                )
            if issue_tokens:
                _token, secret = await identity.create_token(
                    s, actor, TokenCreate(principal_id=user.id, name="demo"), default_ttl_days=30
                )
                demo.tokens[role] = secret
    return demo
