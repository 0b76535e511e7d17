"""The one place that wires Crossdock's parts together for a process (API, worker, CLI, tests)."""

from __future__ import annotations

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
        await self.db.dispose()


def build_container(settings: Settings | None = None) -> Container:
    settings = settings or Settings()
    db = Database(settings.resolved_database_url, pool_size=settings.db_pool_size, echo=settings.db_echo)
    return Container(settings=settings, db=db)
