"""HTTP routes of the engine: flows, versions, runs, journal, waits, events and webhook intake.

Thin: validate, require the declared permission, call one service function, return schemas.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from crossdock.core.context import Actor
from crossdock.core.errors import NotFound
from crossdock.core.pagination import Page
from crossdock.engine import service
from crossdock.engine.core import engine_of
from crossdock.engine.intake import receive_webhook
from crossdock.engine.schemas import (
    DecisionRequest,
    EventPublish,
    EventPublished,
    FlowCreate,
    FlowCreated,
    FlowOut,
    IntakeAck,
    JournalOut,
    ReplayRequest,
    ResolveRequest,
    RunOut,
    RunStart,
    TriggerOut,
    VersionCreate,
    VersionOut,
    WaitOut,
)
from crossdock.identity.permissions import Permission as P
from crossdock.web.deps import ContainerDep, require
from crossdock.web.params import Cursor, Limit, to_page

router = APIRouter(prefix="/v1", tags=["flows"])
hooks_router = APIRouter(tags=["webhooks"])

ReadFlows = Annotated[Actor, Depends(require(P.FLOWS_READ))]
ManageFlows = Annotated[Actor, Depends(require(P.FLOWS_MANAGE))]
PublishFlows = Annotated[Actor, Depends(require(P.FLOWS_PUBLISH))]
ReadRuns = Annotated[Actor, Depends(require(P.RUNS_READ))]
OperateRuns = Annotated[Actor, Depends(require(P.RUNS_OPERATE))]
DecideApprovals = Annotated[Actor, Depends(require(P.APPROVALS_DECIDE))]


@router.post("/flows", response_model=FlowCreated, status_code=201, summary="Create a flow with a draft version.")
async def create_flow(body: FlowCreate, c: ContainerDep, actor: ManageFlows) -> FlowCreated:
    async with c.db.session(actor.scope) as s:
        flow, version = await service.create_flow(s, actor, engine_of(c), body)
        return FlowCreated(flow=FlowOut.model_validate(flow), version=VersionOut.model_validate(version))


@router.get("/flows", response_model=Page[FlowOut])
async def list_flows(
    c: ContainerDep, actor: ReadFlows, limit: Limit = 50, cursor: Cursor = None, merchant_id: str | None = None
) -> Page[FlowOut]:
    async with c.db.session(actor.scope) as s:
        rows, nxt = await service.list_flows(s, limit=limit, cursor=cursor, merchant_id=merchant_id)
        return to_page(FlowOut, rows, nxt)


@router.get("/flows/{flow_id}", response_model=FlowOut)
async def get_flow(flow_id: str, c: ContainerDep, actor: ReadFlows) -> FlowOut:
    async with c.db.session(actor.scope) as s:
        return FlowOut.model_validate(await service.get_flow(s, flow_id))


@router.get("/flows/{flow_id}/versions", response_model=list[VersionOut])
async def list_versions(flow_id: str, c: ContainerDep, actor: ReadFlows) -> list[VersionOut]:
    async with c.db.session(actor.scope) as s:
        return [VersionOut.model_validate(v) for v in await service.list_versions(s, flow_id)]


@router.post("/flows/{flow_id}/versions", response_model=VersionOut, status_code=201)
async def create_version(flow_id: str, body: VersionCreate, c: ContainerDep, actor: ManageFlows) -> VersionOut:
    async with c.db.session(actor.scope) as s:
        return VersionOut.model_validate(await service.create_version(s, actor, engine_of(c), flow_id, body.definition))


@router.post("/flows/{flow_id}/versions/{number}/publish", response_model=VersionOut)
async def publish_version(flow_id: str, number: int, c: ContainerDep, actor: PublishFlows) -> VersionOut:
    async with c.db.session(actor.scope) as s:
        return VersionOut.model_validate(await service.publish_version(s, actor, engine_of(c), flow_id, number))


@router.get(
    "/flows/{flow_id}/triggers", response_model=list[TriggerOut], summary="Triggers; webhook ids are endpoints."
)
async def list_triggers(flow_id: str, c: ContainerDep, actor: ReadFlows) -> list[TriggerOut]:
    async with c.db.session(actor.scope) as s:
        return [TriggerOut.model_validate(t) for t in await service.list_triggers(s, flow_id)]


@router.post("/flows/{flow_id}/runs", response_model=RunOut, status_code=201, summary="Start a run (manual trigger).")
async def start_run(flow_id: str, body: RunStart, c: ContainerDep, actor: OperateRuns) -> RunOut:
    async with c.db.session(actor.scope) as s:
        run, _created = await service.start_run(s, actor, flow_id, body)
        return RunOut.model_validate(run)


@router.get("/runs", response_model=Page[RunOut])
async def list_runs(
    c: ContainerDep,
    actor: ReadRuns,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: str | None = None,
    flow_id: str | None = None,
    merchant_id: str | None = None,
) -> Page[RunOut]:
    async with c.db.session(actor.scope) as s:
        rows, nxt = await service.list_runs(
            s, limit=limit, cursor=cursor, status=status, flow_id=flow_id, merchant_id=merchant_id
        )
        return to_page(RunOut, rows, nxt)


@router.get("/runs/{run_id}", response_model=RunOut)
async def get_run(run_id: str, c: ContainerDep, actor: ReadRuns) -> RunOut:
    async with c.db.session(actor.scope) as s:
        return RunOut.model_validate(await service.get_run(s, run_id))


@router.get("/runs/{run_id}/journal", response_model=list[JournalOut], summary="The run's step journal, in order.")
async def get_journal(
    run_id: str,
    c: ContainerDep,
    actor: ReadRuns,
    limit: Limit = 500,
    after_seq: Annotated[int, Query(ge=0, description="Return entries after this `seq`.")] = 0,
) -> list[JournalOut]:
    async with c.db.session(actor.scope) as s:
        return [
            JournalOut.model_validate(j) for j in await service.get_journal(s, run_id, limit=limit, after_seq=after_seq)
        ]


@router.post("/runs/{run_id}/cancel", response_model=RunOut)
async def cancel_run(run_id: str, c: ContainerDep, actor: OperateRuns) -> RunOut:
    async with c.db.session(actor.scope) as s:
        return RunOut.model_validate(await service.cancel_run(s, actor, run_id))


@router.post("/runs/{run_id}/replay", response_model=RunOut)
async def replay_run(run_id: str, body: ReplayRequest, c: ContainerDep, actor: OperateRuns) -> RunOut:
    edit = body.edit_input or body.input is not None
    async with c.db.session(actor.scope) as s:
        run = await service.replay_run(s, actor, run_id, body.from_step, new_input=body.input, edit=edit)
        return RunOut.model_validate(run)


@router.get("/waits", response_model=Page[WaitOut], summary="Durable waits (approvals, events, timers, sub-flows).")
async def list_waits(
    c: ContainerDep,
    actor: ReadRuns,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: str | None = None,
    kind: str | None = None,
) -> Page[WaitOut]:
    async with c.db.session(actor.scope) as s:
        rows, nxt = await service.list_waits(s, limit=limit, cursor=cursor, status=status, kind=kind)
        return to_page(WaitOut, rows, nxt)


@router.post("/waits/{wait_id}/resolve", response_model=WaitOut, summary="Resolve an event wait (idempotent by key).")
async def resolve_wait(wait_id: str, body: ResolveRequest, c: ContainerDep, actor: OperateRuns) -> WaitOut:
    async with c.db.session(actor.scope) as s:
        wait, _acted = await service.resolve_wait(
            s, actor, wait_id, resolution=body.payload, idempotency_key=body.idempotency_key, kinds=("event",)
        )
        return WaitOut.model_validate(wait)


@router.post("/approvals/{wait_id}/decide", response_model=WaitOut, summary="Approve or reject (idempotent by key).")
async def decide_approval(wait_id: str, body: DecisionRequest, c: ContainerDep, actor: DecideApprovals) -> WaitOut:
    resolution: dict[str, Any] = {"decision": body.decision, "comment": body.comment, "by": actor.principal_id}
    async with c.db.session(actor.scope) as s:
        wait, _acted = await service.resolve_wait(
            s, actor, wait_id, resolution=resolution, idempotency_key=body.idempotency_key, kinds=("approval",)
        )
        return WaitOut.model_validate(wait)


@router.post("/events", response_model=EventPublished, summary="Publish an event to flows and waits of a merchant.")
async def publish_event(body: EventPublish, c: ContainerDep, actor: OperateRuns) -> EventPublished:
    async with c.db.session(actor.scope) as s:
        runs, waits = await service.publish_event(
            s, actor, body.merchant_id, body.name, key=body.key, payload=body.payload, idem=body.idempotency_key
        )
        return EventPublished(runs=runs, resolved_waits=waits)


@hooks_router.post("/hooks/{endpoint_id}", response_model=IntakeAck, summary="Generic webhook intake.")
async def receive_hook(endpoint_id: str, request: Request, c: ContainerDep) -> IntakeAck:
    """Acknowledged (200) only after the event and its run are committed; a duplicate returns the same run."""
    if not endpoint_id.startswith("trg_"):
        raise NotFound("webhook endpoint", endpoint_id)
    body = await request.body()
    result = await receive_webhook(engine_of(c), endpoint_id, body, dict(request.headers))
    return IntakeAck(run_id=result.run_id, event_id=result.event_id, duplicate=result.duplicate)
