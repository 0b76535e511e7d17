"""Flow instances: a merchant's use of a template version, its parameter overrides and connections.

An instance owns one engine flow (`engine_flow_id`). Rendering the template with the merged
parameters gives a definition that is stored as a new engine flow version and published; runs pin
the engine version they started on, so an upgrade never changes a run in flight.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crossdock.core.clock import utcnow
from crossdock.core.db import Base, JSONType, UTCDateTime
from crossdock.core.tenancy import TenantOwned


class InstanceStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class FlowInstance(TenantOwned, Base):
    __tablename__ = "flow_instances"
    __table_args__ = (UniqueConstraint("merchant_id", "key", name="uq_flow_instances_merchant_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(80), doc="The engine flow key; the template name unless given.")
    template: Mapped[str] = mapped_column(String(80), index=True)
    template_version: Mapped[int] = mapped_column(Integer)
    overrides: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    bindings: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    engine_flow_id: Mapped[str] = mapped_column(String(40), index=True)
    engine_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=InstanceStatus.ACTIVE)
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
