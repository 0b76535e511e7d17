"""Request and response bodies of the flows API and CLI: templates, instances and upgrades."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from crossdock.core.schemas import Input, Output


class TemplateSummary(Output):
    name: str
    title: str
    description: str
    versions: list[int]
    latest: int
    params: list[dict[str, Any]] = Field(description="Parameters of the latest version.")


class BindingOut(Output):
    role: str
    system: str
    required: bool
    description: str


class TemplateOut(Output):
    name: str
    version: int
    title: str
    description: str
    params: list[dict[str, Any]]
    bindings: list[BindingOut]
    cases: list[dict[str, Any]]
    definition: dict[str, Any]


class InstanceCreate(Input):
    merchant_id: str
    template: str
    version: int | None = Field(None, description="Template version; the latest when omitted.")
    key: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,79}$", description="Engine flow key; the template name by default."
    )
    overrides: dict[str, Any] = Field(default_factory=dict, description="Parameter values that differ from defaults.")
    bindings: dict[str, str] = Field(default_factory=dict, description="Connection id per role (storefront, erp...).")


class InstanceUpdate(Input):
    overrides: dict[str, Any] | None = Field(None, description="Replaces the overrides; renders a new version.")
    bindings: dict[str, str] | None = Field(None, description="Replaces the bindings; renders a new version.")
    status: Literal["active", "paused"] | None = None


class InstanceOut(Output):
    id: str
    partner_id: str | None
    merchant_id: str | None
    key: str
    template: str
    template_version: int
    overrides: dict[str, Any]
    bindings: dict[str, str]
    engine_flow_id: str
    engine_version: int
    status: str
    created_at: datetime
    updated_at: datetime


class UpgradeRequest(Input):
    to_version: int = Field(ge=1)
    merchant_ids: list[str] | None = Field(None, description="Only these merchants; all visible ones by default.")
    dry_run: bool = True


class UpgradeItem(Output):
    instance_id: str
    merchant_id: str | None
    key: str
    from_version: int
    to_version: int
    status: Literal["would_upgrade", "upgraded", "up_to_date", "failed"]
    params: dict[str, Any]
    definition: dict[str, Any]
    engine_version: int | None = None
    error: str | None = None


class UpgradeReport(Output):
    template: str
    to_version: int
    dry_run: bool
    items: list[UpgradeItem]
