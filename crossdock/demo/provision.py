"""Wire the demo merchants to the simulators: connections, template instances, case teams and routing.

Safe on every start: a connection, instance, team or rule that exists is found by name and kept
(a connection's URL is updated when the sandbox moved to another port), so a second start on the
same database changes nothing but what must follow the new sandbox address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.cases import routing
from crossdock.cases.schemas import RoutingRuleCreate, TeamCreate
from crossdock.connections import service as connections
from crossdock.connections.schemas import ConnectionCreate, ConnectionUpdate
from crossdock.connectors.sandbox.shipstation_state import DEFAULT_API_KEY, DEFAULT_API_SECRET
from crossdock.connectors.sandbox.shopify_orders import DEFAULT_LOCATION_ID
from crossdock.core.context import Actor
from crossdock.core.errors import CrossdockError
from crossdock.demo import sandbox as sb
from crossdock.demo.seed import DemoTenants
from crossdock.engine import service as engine_service
from crossdock.engine.core import engine_of
from crossdock.engine.models import Run
from crossdock.flows import service as flows
from crossdock.flows.catalog import get_template
from crossdock.flows.schemas import InstanceCreate, InstanceUpdate

log = logging.getLogger("crossdock.demo")
SYSTEM = Actor.system()

# merchant slug -> [(template, overrides)]; the ERP binding follows the `erp` override.
INSTANCES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "aurora": [
        ("order_import", {"erp": "businesscentral", "discount_threshold_pct": "30"}),
        ("fulfillment_export", {"source": "shipstation", "erp": "businesscentral"}),
        ("refund_to_credit_memo", {"erp": "businesscentral"}),
        ("return_rma", {"erp": "businesscentral", "auto_approve_under": "100"}),
        ("inventory_sync", {"erp": "businesscentral"}),
    ],
    "cobalt": [
        ("order_import", {"erp": "netsuite", "discount_threshold_pct": "30"}),
        ("credit_hold_routing", {"erp": "netsuite", "auto_under": "500"}),
    ],
}
# Partner-level teams; Cobalt has its own key-account desk.
PARTNER_TEAMS = ("catalog", "finance", "operations", "integrations", "loss-prevention")
COBALT_TEAM = "key-accounts"
RULES = [
    # (merchant slug or None for the partner, rule body without the owner)
    (None, {"name": "Discount abuse goes to loss prevention", "priority": 50,
            "match_category": "discount_anomaly", "team": "loss-prevention", "severity": "high"}),
    ("cobalt", {"name": "Cobalt credit holds go to key accounts", "priority": 10,
                "match_category": "credit_hold", "team": COBALT_TEAM, "sla_minutes": 120}),
]  # fmt: skip
ROLE_SYSTEMS = {"storefront": "shopify", "warehouse": "shipstation"}


@dataclass
class DemoWorld:
    """Ids of everything the demo made, for the traffic generator, the panel and the tests."""

    tenants: DemoTenants
    sandbox_url: str
    api_url: str
    connections: dict[str, dict[str, str]] = field(default_factory=dict)  # slug -> system -> connection id
    instances: dict[str, dict[str, str]] = field(default_factory=dict)  # slug -> template -> instance id
    flows: dict[str, dict[str, str]] = field(default_factory=dict)  # slug -> template -> engine flow id
    skipped: dict[str, str] = field(default_factory=dict)  # "slug/template" -> why it is not running

    def merchant(self, slug: str) -> str:
        return self.tenants.merchants[slug]


def connection_specs(sandbox_url: str) -> dict[str, list[tuple[str, dict[str, Any], dict[str, Any]]]]:
    """Per merchant: (system, config, secrets) of each demo connection, pointing at the sandbox."""
    return {
        "aurora": [
            ("shopify", {"shop_domain": sb.AURORA_SHOP, "base_url": f"{sandbox_url}/shopify"},
             {"access_token": sb.AURORA_TOKEN, "webhook_secrets": [sb.AURORA_WEBHOOK_SECRET]}),
            ("businesscentral", {"tenant": sb.BC_TENANT, "environment": "production", "company_id": sb.BC_COMPANY_ID,
                                 "base_url": f"{sandbox_url}/businesscentral"},
             {"client_id": sb.BC_CLIENT[0], "client_secret": sb.BC_CLIENT[1]}),
            ("shipstation", {"base_url": f"{sandbox_url}/shipstation"},
             {"api_key": DEFAULT_API_KEY, "api_secret": DEFAULT_API_SECRET,
              "webhook_token": sb.SHIPSTATION_WEBHOOK_TOKEN}),
        ],
        "cobalt": [
            ("shopify", {"shop_domain": sb.COBALT_SHOP, "base_url": f"{sandbox_url}/shopify"},
             {"access_token": sb.COBALT_TOKEN, "webhook_secrets": [sb.COBALT_WEBHOOK_SECRET]}),
            ("netsuite", {"account_id": sb.NS_ACCOUNT, "base_url": f"{sandbox_url}/netsuite"}, dict(sb.NS_CREDENTIALS)),
        ],
    }  # fmt: skip


def inventory_maps(catalog: sb.DemoCatalog) -> dict[str, Any]:
    """The inventory_sync overrides mapping Aurora's ERP items and location to Shopify's."""
    return {
        "item_map": {v["sku"]: str(v["inventory_item_id"]) for v in catalog.aurora},
        "location_map": {"MAIN": str(DEFAULT_LOCATION_ID)},
    }


async def provision(
    container: Container, tenants: DemoTenants, *, catalog: sb.DemoCatalog, sandbox_url: str, api_url: str
) -> DemoWorld:
    """Connections, instances, teams and routing rules of the demo merchants (idempotent)."""
    world = DemoWorld(tenants=tenants, sandbox_url=sandbox_url, api_url=api_url)
    await _connections(container, world)
    await _instances(container, world, inventory_maps(catalog))
    await _teams_and_rules(container, world)
    return world


async def _connections(container: Container, world: DemoWorld) -> None:
    for slug, specs in connection_specs(world.sandbox_url).items():
        merchant_id = world.merchant(slug)
        async with container.db.session(SYSTEM.scope) as s:
            existing, _ = await connections.list_connections(s, limit=200, cursor=None, merchant_id=merchant_id)
            by_name = {c.name: c for c in existing}
            for system, config, secrets in specs:
                name = f"{slug}-{system}"
                found = by_name.get(name)
                if found is None:
                    body = ConnectionCreate(merchant_id=merchant_id, system=system, name=name, config=config,
                                            secrets=secrets)  # fmt: skip
                    found = await connections.create_connection(
                        s, SYSTEM, body, registry=container.connectors, box=container.secrets
                    )
                elif {**found.config, **config} != found.config:  # the sandbox moved to another port
                    await connections.update_connection(
                        s, SYSTEM, found.id, ConnectionUpdate(config={**found.config, **config}, secrets=secrets),
                        registry=container.connectors, box=container.secrets,
                    )  # fmt: skip
                world.connections.setdefault(slug, {})[system] = found.id


def _bindings(template_name: str, overrides: dict[str, Any], conns: dict[str, str]) -> dict[str, str]:
    template = get_template(template_name, None)
    bindings = {}
    for binding in template.bindings:
        system = overrides.get("erp") if binding.role == "erp" else ROLE_SYSTEMS.get(binding.role)
        if system and system in conns:
            bindings[binding.role] = conns[system]
    return bindings


async def _instances(container: Container, world: DemoWorld, stock_maps: dict[str, Any]) -> None:
    engine = engine_of(container)
    for slug, wanted in INSTANCES.items():
        merchant_id = world.merchant(slug)
        for template, base in wanted:
            overrides = {**base, **(stock_maps if template == "inventory_sync" else {})}
            bindings = _bindings(template, overrides, world.connections[slug])
            try:
                async with container.db.session(SYSTEM.scope) as s:
                    found, _ = await flows.list_instances(
                        s, limit=1, cursor=None, merchant_id=merchant_id, template=template
                    )
                    if not found:
                        body = InstanceCreate(
                            merchant_id=merchant_id, template=template, overrides=overrides, bindings=bindings
                        )
                        inst = await flows.create_instance(s, SYSTEM, engine, body)
                    else:
                        inst = found[0]
                        if inst.bindings != bindings:
                            update = InstanceUpdate(bindings=bindings)
                            inst = await flows.update_instance(s, SYSTEM, engine, inst.id, update)
                    world.instances.setdefault(slug, {})[template] = inst.id
                    world.flows.setdefault(slug, {})[template] = inst.engine_flow_id
            except CrossdockError as exc:  # a template not runnable yet stays out of the demo
                world.skipped[f"{slug}/{template}"] = exc.message
                log.warning("demo instance %s/%s skipped: %s", slug, template, exc.message)


async def _teams_and_rules(container: Container, world: DemoWorld) -> None:
    partner_id = world.tenants.partner_id
    cobalt = world.merchant("cobalt")
    async with container.db.session(SYSTEM.scope) as s:
        teams, _ = await routing.list_teams(s, limit=500, cursor=None)
        have = {(t.name, t.merchant_id) for t in teams}
        for name in PARTNER_TEAMS:
            if (name, None) not in have:
                await routing.create_team(s, SYSTEM, TeamCreate(name=name, partner_id=partner_id))
        if (COBALT_TEAM, cobalt) not in have:
            await routing.create_team(s, SYSTEM, TeamCreate(name=COBALT_TEAM, merchant_id=cobalt))
        rules, _ = await routing.list_rules(s, limit=500, cursor=None)
        names = {r.name for r in rules}
        for slug, rule in RULES:
            if rule["name"] in names:
                continue
            owner = {"merchant_id": world.merchant(slug)} if slug else {"partner_id": partner_id}
            await routing.create_rule(s, SYSTEM, RoutingRuleCreate(**owner, **rule))


async def retire_previous_runs(container: Container, world: DemoWorld) -> int:
    """Cancel the demo's unfinished runs of an earlier start (audited as any cancel).

    The simulators live in memory, so the orders those runs wait on or would write back to are
    gone; left alone they would only fail with `not_found`. Ended runs and their cases stay.
    """
    flow_ids = [flow for flows in world.flows.values() for flow in flows.values()]
    async with container.db.session(SYSTEM.scope) as s:
        stale = (
            await s.scalars(
                select(Run.id).where(Run.flow_id.in_(flow_ids), Run.status.in_(("queued", "running", "waiting")))
            )
        ).all()
        for run_id in stale:
            await engine_service.cancel_run(s, SYSTEM, run_id)
    return len(stale)
