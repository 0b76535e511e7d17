"""HTTP routes of the exception desk: cases, their actions, bulk actions, routing rules and teams."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from crossdock.cases import routing, service
from crossdock.cases.models import Case
from crossdock.cases.schemas import (
    AssignBody,
    BulkBody,
    BulkResult,
    CaseDetailOut,
    CaseFilter,
    CaseOut,
    CommentBody,
    ReasonBody,
    ReplayBody,
    RoutingRuleCreate,
    RoutingRuleOut,
    RoutingRuleUpdate,
    SeverityName,
    SlaStateName,
    StateName,
    TeamCreate,
    TeamOut,
)
from crossdock.core.context import Actor
from crossdock.core.pagination import Page
from crossdock.identity.permissions import Permission as P
from crossdock.web.deps import ContainerDep, require
from crossdock.web.params import Cursor, Limit, to_page

router = APIRouter(prefix="/v1", tags=["cases"])
Read = Annotated[Actor, Depends(require(P.CASES_READ))]
Operate = Annotated[Actor, Depends(require(P.CASES_OPERATE))]
Age = Annotated[int | None, Query(ge=0, description="Minutes since the case opened.")]


@router.get("/cases", response_model=Page[CaseOut])
async def list_cases(
    c: ContainerDep,
    actor: Read,
    limit: Limit = 50,
    cursor: Cursor = None,
    merchant_id: str | None = None,
    category: str | None = None,
    severity: SeverityName | None = None,
    team: str | None = None,
    state: StateName | None = None,
    sla_state: SlaStateName | None = None,
    assignee: str | None = None,
    flow_id: str | None = None,
    min_age_minutes: Age = None,
    max_age_minutes: Age = None,
) -> Page[CaseOut]:
    flt = CaseFilter(
        merchant_id=merchant_id,
        category=category,
        severity=severity,
        team=team,
        state=state,
        sla_state=sla_state,
        assignee=assignee,
        flow_id=flow_id,
        min_age_minutes=min_age_minutes,
        max_age_minutes=max_age_minutes,
    )
    async with c.db.session(actor.scope) as s:
        rows, nxt = await service.list_cases(s, flt, limit=limit, cursor=cursor)
        return to_page(CaseOut, rows, nxt)


@router.get("/cases/{case_id}", response_model=CaseDetailOut)
async def get_case(case_id: str, c: ContainerDep, actor: Read) -> CaseDetailOut:
    async with c.db.session(actor.scope) as s:
        return CaseDetailOut.build(*await service.case_detail(s, case_id))


def _out(case: Case) -> CaseOut:
    return CaseOut.model_validate(case)


@router.post("/cases/bulk", response_model=BulkResult)
async def bulk(body: BulkBody, c: ContainerDep, actor: Operate) -> BulkResult:
    async with c.db.session(actor.scope) as s:
        result = await service.bulk(
            s, actor, body.filter, body.action, assignee=body.assignee, text=body.text, reason=body.reason
        )
        return BulkResult(**result)


@router.post("/cases/{case_id}/assign", response_model=CaseOut)
async def assign(case_id: str, body: AssignBody, c: ContainerDep, actor: Operate) -> CaseOut:
    async with c.db.session(actor.scope) as s:
        return _out(await service.assign(s, actor, case_id, body.assignee))


@router.post("/cases/{case_id}/comment", response_model=CaseOut)
async def comment(case_id: str, body: CommentBody, c: ContainerDep, actor: Operate) -> CaseOut:
    async with c.db.session(actor.scope) as s:
        return _out(await service.comment(s, actor, case_id, body.text))


@router.post("/cases/{case_id}/start", response_model=CaseOut)
async def start(case_id: str, c: ContainerDep, actor: Operate) -> CaseOut:
    async with c.db.session(actor.scope) as s:
        return _out(await service.start(s, actor, case_id))


@router.post("/cases/{case_id}/retry", response_model=CaseOut)
async def retry(case_id: str, c: ContainerDep, actor: Operate) -> CaseOut:
    async with c.db.session(actor.scope) as s:
        return _out(await service.retry(s, actor, case_id))


@router.post("/cases/{case_id}/replay", response_model=CaseOut)
async def replay(case_id: str, body: ReplayBody, c: ContainerDep, actor: Operate) -> CaseOut:
    async with c.db.session(actor.scope) as s:
        return _out(
            await service.edit_and_replay(s, actor, case_id, body.payload, run_id=body.run_id, from_step=body.from_step)
        )


@router.post("/cases/{case_id}/resolve", response_model=CaseOut)
async def resolve(case_id: str, body: ReasonBody, c: ContainerDep, actor: Operate) -> CaseOut:
    async with c.db.session(actor.scope) as s:
        return _out(await service.resolve(s, actor, case_id, body.reason))


@router.post("/cases/{case_id}/ignore", response_model=CaseOut)
async def ignore(case_id: str, body: ReasonBody, c: ContainerDep, actor: Operate) -> CaseOut:
    async with c.db.session(actor.scope) as s:
        return _out(await service.ignore(s, actor, case_id, body.reason))


# -- routing rules and teams ------------------------------------------------------------------


@router.get("/routing-rules", response_model=Page[RoutingRuleOut])
async def list_rules(
    c: ContainerDep, actor: Operate, limit: Limit = 50, cursor: Cursor = None, merchant_id: str | None = None
) -> Page[RoutingRuleOut]:
    async with c.db.session(actor.scope) as s:
        rows, nxt = await routing.list_rules(s, limit=limit, cursor=cursor, merchant_id=merchant_id)
        return to_page(RoutingRuleOut, rows, nxt)


@router.post("/routing-rules", response_model=RoutingRuleOut, status_code=201)
async def create_rule(body: RoutingRuleCreate, c: ContainerDep, actor: Operate) -> RoutingRuleOut:
    async with c.db.session(actor.scope) as s:
        return RoutingRuleOut.model_validate(await routing.create_rule(s, actor, body))


@router.get("/routing-rules/{rule_id}", response_model=RoutingRuleOut)
async def get_rule(rule_id: str, c: ContainerDep, actor: Operate) -> RoutingRuleOut:
    async with c.db.session(actor.scope) as s:
        return RoutingRuleOut.model_validate(await routing.get_rule(s, rule_id))


@router.patch("/routing-rules/{rule_id}", response_model=RoutingRuleOut)
async def update_rule(rule_id: str, body: RoutingRuleUpdate, c: ContainerDep, actor: Operate) -> RoutingRuleOut:
    async with c.db.session(actor.scope) as s:
        return RoutingRuleOut.model_validate(await routing.update_rule(s, actor, rule_id, body))


@router.delete("/routing-rules/{rule_id}", status_code=204)
async def delete_rule(rule_id: str, c: ContainerDep, actor: Operate) -> Response:
    async with c.db.session(actor.scope) as s:
        await routing.delete_rule(s, actor, rule_id)
    return Response(status_code=204)


@router.get("/case-teams", response_model=Page[TeamOut])
async def list_teams(c: ContainerDep, actor: Operate, limit: Limit = 50, cursor: Cursor = None) -> Page[TeamOut]:
    async with c.db.session(actor.scope) as s:
        rows, nxt = await routing.list_teams(s, limit=limit, cursor=cursor)
        return to_page(TeamOut, rows, nxt)


@router.post("/case-teams", response_model=TeamOut, status_code=201)
async def create_team(body: TeamCreate, c: ContainerDep, actor: Operate) -> TeamOut:
    async with c.db.session(actor.scope) as s:
        return TeamOut.model_validate(await routing.create_team(s, actor, body))


@router.delete("/case-teams/{team_id}", status_code=204)
async def delete_team(team_id: str, c: ContainerDep, actor: Operate) -> Response:
    async with c.db.session(actor.scope) as s:
        await routing.delete_team(s, actor, team_id)
    return Response(status_code=204)
