"""Request and response bodies of the engine's API and CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from crossdock.core.schemas import Input, Output


class FlowCreate(Input):
    merchant_id: str
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,79}$", description="Stable name, unique per merchant.")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    definition: dict[str, Any] | str = Field(description="The definition, as an object or YAML/JSON text.")


class VersionCreate(Input):
    definition: dict[str, Any] | str


class VersionOut(Output):
    id: str
    flow_id: str
    number: int
    status: str
    checksum: str
    definition: dict[str, Any]
    created_at: datetime
    published_at: datetime | None


class FlowOut(Output):
    id: str
    key: str
    name: str
    description: str | None
    partner_id: str | None
    merchant_id: str | None
    published_version: int | None
    created_at: datetime


class FlowCreated(Output):
    flow: FlowOut
    version: VersionOut


class TriggerOut(Output):
    id: str
    flow_id: str
    name: str
    kind: str
    enabled: bool
    next_fire_at: datetime | None


class RunStart(Input):
    input: Any = None
    idempotency_key: str | None = Field(None, max_length=200, description="Same key again: the same run, no new one.")


class RunOut(Output):
    id: str
    flow_id: str
    version_id: str
    status: str
    partner_id: str | None
    merchant_id: str | None
    trigger: dict[str, Any]
    input: Any
    output: Any
    error: dict[str, Any] | None
    parent_run_id: str | None
    generation: int
    claims: int
    replays: list[dict[str, Any]]
    wake_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JournalOut(Output):
    seq: int
    run_id: str
    step_path: str
    step_type: str
    attempt: int
    status: str
    output: Any
    error: dict[str, Any] | None
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    superseded: bool


class ReplayRequest(Input):
    from_step: str = Field(description="Step path to replay from, e.g. `upsert` or `lines[2].post`.")
    input: Any = Field(None, description="Edited run input; omit to keep the current one.")
    edit_input: bool = Field(False, description="Set true to replace the input with `input` (even null).")


class WaitOut(Output):
    id: str
    run_id: str
    step_path: str
    kind: str
    wait_key: str | None
    status: str
    prompt: str | None
    approvers: list[str]
    expires_at: datetime | None
    resolution: Any
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


class ResolveRequest(Input):
    idempotency_key: str = Field(min_length=1, max_length=200)
    payload: Any = None


class DecisionRequest(Input):
    idempotency_key: str = Field(min_length=1, max_length=200)
    decision: Literal["approved", "rejected"]
    comment: str | None = Field(None, max_length=2000)


class EventPublish(Input):
    merchant_id: str
    name: str = Field(min_length=1, max_length=120, description="Starts flows with an `event` trigger of this name.")
    key: str | None = Field(None, description="Resolves open `wait_for_event` waits with this key.")
    payload: Any = None
    idempotency_key: str = Field(min_length=1, max_length=200)


class EventPublished(Output):
    runs: list[str]
    resolved_waits: list[str]


class IntakeAck(Output):
    run_id: str
    event_id: str | None
    duplicate: bool
