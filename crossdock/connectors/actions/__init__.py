"""Typed engine actions for every built-in connector, registered with `register_connector_actions`.

    register_connector_actions(engine_of(container), container)

adds `shopify.*`, `businesscentral.*`, `netsuite.*`, `shipstation.*`, `email.send` and `chat.post`
to the engine's action registry, all sharing one per-process `ConnectorPool` (kept in
`container.extras["connectors.pool"]`; close it with `close_connector_actions(container)`), and
installs the `shopify` webhook verifier for the engine's generic `/hooks/{endpoint_id}` route.
Calling it again for the same engine is a no-op.
"""

from __future__ import annotations

from typing import Any

from crossdock.connectors.actions import businesscentral, messaging, netsuite, shipstation, shopify
from crossdock.connectors.actions.pool import DEFAULT_BUDGETS, ClientBuilder, ConnectorPool, RateBudget
from crossdock.connectors.actions.spec import ConnectorAction
from crossdock.engine.core import Engine

POOL_KEY = "connectors.pool"

ALL_ACTIONS: list[ConnectorAction] = [
    *shopify.ACTIONS,
    *businesscentral.ACTIONS,
    *netsuite.ACTIONS,
    *shipstation.ACTIONS,
    *messaging.ACTIONS,
]

BUILDERS: dict[str, ClientBuilder] = {
    "shopify": shopify.build_client,
    "businesscentral": businesscentral.build_client,
    "netsuite": netsuite.build_client,
    "shipstation": shipstation.build_client,
    "smtp": messaging.build_mailer,
    "chat": messaging.build_chat,
}


def register_connector_actions(
    engine: Engine,
    container: Any,
    *,
    budgets: dict[str, RateBudget] | None = None,
    revalidate_s: float | None = None,
) -> ConnectorPool:
    """Register every connector action on `engine`; returns the shared client pool.

    `budgets` overrides the default rate budget per system (see `DEFAULT_BUDGETS`); `revalidate_s`
    (default 5 s) is how often a pooled client re-checks its connection row. Called again with no
    options it keeps the existing pool; with options it replaces it (tests tune both).
    """
    existing = container.extras.get(POOL_KEY)
    registered = all(a.name in engine.actions for a in ALL_ACTIONS)
    if isinstance(existing, ConnectorPool) and registered and budgets is None and revalidate_s is None:
        return existing
    pool = ConnectorPool(
        container, engine.rates, BUILDERS, budgets=budgets, revalidate_s=5.0 if revalidate_s is None else revalidate_s
    )
    container.extras[POOL_KEY] = pool
    for action in ALL_ACTIONS:
        engine.actions.register(action.spec(pool), replace=True)
    from crossdock.connectors.intake_api import register_verifiers

    register_verifiers(engine, container)
    return pool


async def close_connector_actions(container: Any) -> None:
    """Close the pooled clients (API/worker shutdown)."""
    pool = container.extras.pop(POOL_KEY, None)
    if isinstance(pool, ConnectorPool):
        await pool.aclose()


__all__ = [
    "ALL_ACTIONS",
    "DEFAULT_BUDGETS",
    "ConnectorPool",
    "RateBudget",
    "close_connector_actions",
    "register_connector_actions",
]
