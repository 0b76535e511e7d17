"""The one place that wires Crossdock's parts together for a process (API, worker, CLI, tests)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from crossdock.core.db import Database
from crossdock.core.metrics import Metrics
from crossdock.core.settings import Settings

if TYPE_CHECKING:
    from crossdock.connectors.base import ConnectorRegistry
    from crossdock.core.secrets import SecretBox


@dataclass
class Container:
    """Everything a process needs, made once and passed down; no module holds global state."""

    settings: Settings
    db: Database
    metrics: Metrics = field(default_factory=Metrics)
    extras: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def secrets(self) -> SecretBox:
        """The master-key box for secrets at rest (loaded on first use)."""
        from crossdock.core.secrets import load_secret_box

        return load_secret_box(self.settings)

    @cached_property
    def connectors(self) -> ConnectorRegistry:
        from crossdock.connectors.builtin import default_registry

        return default_registry()

    async def close(self) -> None:
        if "engine" in self.extras:
            from crossdock.connectors.actions import close_connector_actions

            await close_connector_actions(self)
        await self.db.dispose()


def _setup_engine(engine: Any, container: Container) -> None:
    """Plug the domains into a new engine: their actions and the exception desk's case raiser."""
    from crossdock.cases.runtime import install as install_cases
    from crossdock.connectors.actions import register_connector_actions
    from crossdock.flows.commerce import register_commerce_actions

    register_connector_actions(engine, container)
    register_commerce_actions(engine)
    install_cases(container)


async def _cases_tick(container: Container) -> None:
    from crossdock.cases.runtime import tick

    await tick(container)


def build_container(
    settings: Settings | None = None,
    *,
    server_settings: Mapping[str, str] | None = None,
    role: str = "cli",
) -> Container:
    """The process's services. `server_settings`: PostgreSQL settings for its connections (a worker
    process passes `settings.worker.postgres_settings`). `role` names the process to PostgreSQL:
    its connections carry `application_name` `crossdock-<role>` (`api`, `worker`, `up`, `cli`), so
    `pg_stat_activity` tells the webhook intake's backends from the workers' (unless
    `server_settings` sets `application_name` itself)."""
    settings = settings or Settings()
    db = Database(
        settings.resolved_database_url,
        pool_size=settings.db_pool_size,
        echo=settings.db_echo,
        server_settings={"application_name": f"crossdock-{role}", **(server_settings or {})},
    )
    container = Container(settings=settings, db=db)
    container.extras["engine.setup"] = [_setup_engine]
    # (interval seconds, job): run by every engine runtime (embedded and `crossdock worker`).
    container.extras["engine.periodic"] = [(settings.worker.case_sweep_seconds, _cases_tick)]
    return container
