"""All simulators in one ASGI app: `/shopify`, `/businesscentral`, `/netsuite`, `/shipstation`.

`crossdock sandbox up --port 8711` serves it; the demo runs it in-process; partners' tests can start it
with `serve_in_thread(create_sandbox_app())`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import FastAPI

from crossdock.connectors.sandbox.businesscentral import BusinessCentralSimulator, create_businesscentral_app
from crossdock.connectors.sandbox.netsuite import NetSuiteSimulator, create_netsuite_app
from crossdock.connectors.sandbox.shipstation import create_shipstation_app
from crossdock.connectors.sandbox.shipstation_state import ShipStationSimulator
from crossdock.connectors.sandbox.shopify import create_shopify_app
from crossdock.connectors.sandbox.shopify_state import ShopifySimulator

MOUNTS = ("shopify", "businesscentral", "netsuite", "shipstation")


@dataclass
class Sandbox:
    """The simulators' state, shared by the mounted apps and by in-process callers (demo, tests)."""

    shopify: ShopifySimulator = field(default_factory=ShopifySimulator)
    businesscentral: BusinessCentralSimulator = field(default_factory=BusinessCentralSimulator)
    netsuite: NetSuiteSimulator = field(default_factory=NetSuiteSimulator)
    shipstation: ShipStationSimulator = field(default_factory=ShipStationSimulator)


def create_sandbox_app(sandbox: Sandbox | None = None) -> FastAPI:
    sandbox = sandbox or Sandbox()
    app = FastAPI(title="Crossdock sandbox: contract-faithful simulators", docs_url=None, redoc_url=None)
    app.state.sandbox = sandbox
    app.mount("/shopify", create_shopify_app(sandbox.shopify))
    app.mount("/businesscentral", create_businesscentral_app(sandbox.businesscentral))
    app.mount("/netsuite", create_netsuite_app(sandbox.netsuite))
    app.mount("/shipstation", create_shipstation_app(sandbox.shipstation))

    @app.get("/")
    async def index() -> dict[str, list[str]]:
        return {"simulators": [f"/{m}" for m in MOUNTS]}

    return app
