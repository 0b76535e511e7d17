"""Request and response bodies of the exception desk: cases, actions, bulk actions, routing rules, teams."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from crossdock.core.schemas import Input, Output

SeverityName = Literal["low", "medium", "high", "critical"]
StateName = Literal["open", "in_progress", "resolved", "ignored"]
SlaStateName = Literal["ok", "warning", "breached"]
BulkActionName = Literal["assign", "comment", "start", "retry", "resolve", "ignore"]
Reason = Field(min_length=1, max_length=2000, description="Why; kept on the case and in the audit trail.")


class CaseFilter(Input):
    """Which cases a list or a bulk action covers; every given field must match."""

    merchant_id: str | None = None
    category: str | None = None
    severity: SeverityName | None = None
    team: str | None = None
    state: StateName | None = None
    sla_state: SlaStateName | None = None
    assignee: str | None = None
    flow_id: str | None = None
    min_age_minutes: int | None = Field(None, ge=0, description="Opened at least this many minutes ago.")
    max_age_minutes: int | None = Field(None, ge=0, description="Opened at most this many minutes ago.")

    def is_empty(self) -> bool:
        return not any(v is not None for v in self.model_dump().values())


class CaseOut(Output):
    id: str
    partner_id: str | None
    merchant_id: str | None
    category: str
    severity: str
    team: str
    state: str
    title: str
    message: str
    trace_key: str
    occurrences: int
    first_seen_at: datetime
    last_seen_at: datetime
    run_id: str | None
    step_path: str | None
    flow_id: str | None
    amount: float | None
    assignee: str | None
    sla_minutes: int
    sla_due_at: datetime
    sla_state: str
    escalation_level: int
    resolution: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    created_at: datetime
    updated_at: datetime


class CaseEventOut(Output):
    id: str
    kind: str
    actor_type: str
    actor_id: str
    text: str | None
    data: dict[str, Any]
    at: datetime


class CaseRunOut(Output):
    run_id: str
    step_path: str | None
    generation: int
    outcome: str
    linked_at: datetime


class CaseDetailOut(CaseOut):
    payload: Any = Field(None, description="The failed run's input: what an edit-and-replay changes.")
    error: dict[str, Any] | None
    rule_id: str | None
    runs: list[CaseRunOut]
    timeline: list[CaseEventOut]

    @classmethod
    def build(cls, case: Any, links: list[Any], events: list[Any]) -> CaseDetailOut:
        """The detail of a case from its row, its run links and its timeline events."""
        return cls(
            **CaseOut.model_validate(case).model_dump(),
            payload=case.payload,
            error=case.error,
            rule_id=case.rule_id,
            runs=[CaseRunOut.model_validate(link) for link in links],
            timeline=[CaseEventOut.model_validate(e) for e in events],
        )


class AssignBody(Input):
    assignee: str | None = Field(None, max_length=200, description="A user id or email; null unassigns.")


class CommentBody(Input):
    text: str = Field(min_length=1, max_length=10000)


class ReasonBody(Input):
    reason: str = Reason


class ReplayBody(Input):
    payload: Any = Field(description="The new input of the run, replayed from the failed step.")
    run_id: str | None = Field(None, description="Which linked run to replay (default: the case's first run).")
    from_step: str | None = Field(
        None,
        max_length=300,
        description="Replay from this step instead of the failed one (to re-derive earlier steps).",
    )


class BulkBody(Input):
    filter: CaseFilter
    action: BulkActionName
    assignee: str | None = Field(None, max_length=200)
    text: str | None = Field(None, min_length=1, max_length=10000)
    reason: str | None = Field(None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _needs(self) -> BulkBody:
        if self.filter.is_empty():
            raise ValueError("filter must name at least one field; bulk actions never apply to every case")
        if self.action == "comment" and not self.text:
            raise ValueError("action comment needs `text`")
        if self.action in ("resolve", "ignore") and not self.reason:
            raise ValueError(f"action {self.action} needs `reason`")
        return self


class BulkResult(Output):
    matched: int
    applied: int
    skipped: int
    case_ids: list[str] = Field(description="The cases the action was applied to.")
    problems: list[dict[str, str]] = Field(description="Why each skipped case was skipped.")


class RoutingRuleCreate(Input):
    name: str = Field(min_length=1, max_length=120)
    partner_id: str | None = Field(None, description="A partner-level rule (for all its merchants).")
    merchant_id: str | None = Field(None, description="A merchant-level rule; give this or partner_id.")
    priority: int = Field(100, ge=0, le=100000, description="Lower runs first.")
    enabled: bool = True
    match_category: str | None = Field(None, max_length=40)
    match_merchant_id: str | None = Field(None, max_length=40)
    match_flow_id: str | None = Field(None, max_length=40)
    min_amount: float | None = Field(None, ge=0)
    team: str = Field(min_length=1, max_length=80)
    severity: SeverityName | None = None
    sla_minutes: int | None = Field(None, ge=1, le=525600)

    @model_validator(mode="after")
    def _one_owner(self) -> RoutingRuleCreate:
        if bool(self.partner_id) == bool(self.merchant_id):
            raise ValueError("give exactly one of partner_id or merchant_id")
        return self


class RoutingRuleUpdate(Input):
    name: str | None = Field(None, min_length=1, max_length=120)
    priority: int | None = Field(None, ge=0, le=100000)
    enabled: bool | None = None
    match_category: str | None = Field(None, max_length=40)
    match_merchant_id: str | None = Field(None, max_length=40)
    match_flow_id: str | None = Field(None, max_length=40)
    min_amount: float | None = Field(None, ge=0)
    team: str | None = Field(None, min_length=1, max_length=80)
    severity: SeverityName | None = None
    sla_minutes: int | None = Field(None, ge=1, le=525600)


class RoutingRuleOut(Output):
    id: str
    partner_id: str | None
    merchant_id: str | None
    name: str
    priority: int
    enabled: bool
    match_category: str | None
    match_merchant_id: str | None
    match_flow_id: str | None
    min_amount: float | None
    team: str
    severity: str | None
    sla_minutes: int | None
    created_at: datetime


class TeamCreate(Input):
    name: str = Field(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    partner_id: str | None = None
    merchant_id: str | None = None
    emails: list[str] = Field(default_factory=list, max_length=50)
    email_connection_id: str | None = Field(None, description="An `smtp` connection that sends the emails.")
    chat_connection_id: str | None = Field(None, description="A `chat` connection (Slack/Teams webhook).")

    @model_validator(mode="after")
    def _check(self) -> TeamCreate:
        if bool(self.partner_id) == bool(self.merchant_id):
            raise ValueError("give exactly one of partner_id or merchant_id")
        for address in self.emails:
            if "@" not in address or " " in address:
                raise ValueError(f"{address!r} is not an email address")
        if self.emails and not self.email_connection_id:
            raise ValueError("emails need email_connection_id (an smtp connection to send them)")
        return self


class TeamOut(Output):
    id: str
    partner_id: str | None
    merchant_id: str | None
    name: str
    emails: list[str]
    email_connection_id: str | None
    chat_connection_id: str | None
    created_at: datetime
