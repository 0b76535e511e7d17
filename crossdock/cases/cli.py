"""`crossdock case ...`: list, show and work cases from the terminal (as the platform operator)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer

from crossdock.cases import service
from crossdock.cases.schemas import BulkBody, BulkResult, CaseDetailOut, CaseFilter, CaseOut
from crossdock.cli.admin import DbOpt, JsonOpt, operator_session
from crossdock.cli.output import console, emit, run
from crossdock.core.errors import ValidationFailed

cases_app = typer.Typer(help="The exception desk: list, inspect, retry, replay and close cases.", no_args_is_help=True)

COLUMNS = ["id", "merchant_id", "category", "severity", "team", "state", "occurrences", "sla_state", "assignee"]
Merchant = Annotated[str | None, typer.Option(help="Only this merchant's cases.")]
Category = Annotated[str | None, typer.Option(help="Category, e.g. sku_not_found.")]
SeverityOpt = Annotated[str | None, typer.Option(help="low, medium, high or critical.")]
Team = Annotated[str | None, typer.Option(help="Owning team.")]
State = Annotated[str | None, typer.Option(help="open, in_progress, resolved or ignored.")]
SlaOpt = Annotated[str | None, typer.Option("--sla-state", help="ok, warning or breached.")]
Assignee = Annotated[str | None, typer.Option(help="Assigned to.")]
Flow = Annotated[str | None, typer.Option("--flow-id", help="Only cases of this flow.")]
MinAge = Annotated[int | None, typer.Option("--min-age", help="Opened at least this many minutes ago.")]
MaxAge = Annotated[int | None, typer.Option("--max-age", help="Opened at most this many minutes ago.")]


def _filter(**values: Any) -> CaseFilter:
    try:
        return CaseFilter(**values)
    except ValueError as exc:
        raise ValidationFailed(f"The filter is not valid: {exc}") from None


def _payload(value: str) -> Any:
    if value.startswith("@"):
        with open(value[1:], "rb") as fh:
            value = fh.read().decode()
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"--payload is not valid JSON: {exc}") from None


@cases_app.command("list")
def case_list(
    merchant_id: Merchant = None,
    category: Category = None,
    severity: SeverityOpt = None,
    team: Team = None,
    state: State = None,
    sla_state: SlaOpt = None,
    assignee: Assignee = None,
    flow_id: Flow = None,
    min_age: MinAge = None,
    max_age: MaxAge = None,
    limit: Annotated[int, typer.Option(help="At most this many cases.")] = 100,
    json: JsonOpt = False,
    database: DbOpt = None,
) -> None:
    """List cases, newest last, filtered like the API."""

    async def go() -> list[CaseOut]:
        flt = _filter(
            merchant_id=merchant_id,
            category=category,
            severity=severity,
            team=team,
            state=state,
            sla_state=sla_state,
            assignee=assignee,
            flow_id=flow_id,
            min_age_minutes=min_age,
            max_age_minutes=max_age,
        )
        async with operator_session(database) as (_c, s, _a):
            rows, _ = await service.list_cases(s, flt, limit=limit, cursor=None)
            return [CaseOut.model_validate(r) for r in rows]

    emit(run(go()), as_json=json, columns=COLUMNS)


@cases_app.command("show")
def case_show(case_id: str, json: JsonOpt = False, database: DbOpt = None) -> None:
    """A case with its linked runs, payload and timeline."""

    async def go() -> CaseDetailOut:
        async with operator_session(database) as (_c, s, _a):
            return CaseDetailOut.build(*await service.case_detail(s, case_id))

    detail = run(go())
    if json:
        emit(detail, as_json=True)
        return
    console.print(f"[bold]{detail.id}[/] {detail.title}")
    console.print(
        f"state {detail.state} · severity {detail.severity} · team {detail.team} · "
        f"{detail.occurrences} occurrence(s) · SLA {detail.sla_state}, due {detail.sla_due_at:%Y-%m-%d %H:%M} UTC"
    )
    for link in detail.runs:
        console.print(f"  run {link.run_id} step {link.step_path} ({link.outcome})")
    console.print("payload: " + orjson.dumps(detail.payload).decode()[:2000])
    for event in detail.timeline:
        text = f" — {event.text}" if event.text else ""
        console.print(f"  {event.at:%Y-%m-%d %H:%M:%S} {event.kind} by {event.actor_id}{text}")


def _act(case_id: str, database: str | None, json: bool, action: Any) -> None:
    async def go() -> CaseOut:
        async with operator_session(database) as (_c, s, actor):
            return CaseOut.model_validate(await action(s, actor))

    emit(run(go()), as_json=json, columns=COLUMNS)


@cases_app.command("assign")
def case_assign(case_id: str, assignee: str, json: JsonOpt = False, database: DbOpt = None) -> None:
    """Assign a case to someone (a user id or email)."""
    _act(case_id, database, json, lambda s, a: service.assign(s, a, case_id, assignee))


@cases_app.command("comment")
def case_comment(case_id: str, text: str, json: JsonOpt = False, database: DbOpt = None) -> None:
    """Add a comment to a case's timeline."""
    _act(case_id, database, json, lambda s, a: service.comment(s, a, case_id, text))


@cases_app.command("retry")
def case_retry(case_id: str, json: JsonOpt = False, database: DbOpt = None) -> None:
    """Replay the case's failed runs from their failed step, with the same input."""
    _act(case_id, database, json, lambda s, a: service.retry(s, a, case_id))


@cases_app.command("replay")
def case_replay(
    case_id: str,
    payload: Annotated[str, typer.Option(help="The new run input: JSON, or @file.json.")],
    run_id: Annotated[str | None, typer.Option(help="Which linked run (default: the case's first).")] = None,
    from_step: Annotated[str | None, typer.Option(help="Replay from this step instead of the failed one.")] = None,
    json: JsonOpt = False,
    database: DbOpt = None,
) -> None:
    """Replay a run of the case from its failed step with an edited payload."""
    _act(  # the payload is parsed inside the command's run, so a bad file prints a clean error
        case_id,
        database,
        json,
        lambda s, a: service.edit_and_replay(s, a, case_id, _payload(payload), run_id=run_id, from_step=from_step),
    )


@cases_app.command("resolve")
def case_resolve(
    case_id: str,
    reason: Annotated[str, typer.Option(help="How it was resolved.")],
    json: JsonOpt = False,
    database: DbOpt = None,
) -> None:
    """Resolve a case."""
    _act(case_id, database, json, lambda s, a: service.resolve(s, a, case_id, reason))


@cases_app.command("ignore")
def case_ignore(
    case_id: str,
    reason: Annotated[str, typer.Option(help="Why it can be ignored (required).")],
    json: JsonOpt = False,
    database: DbOpt = None,
) -> None:
    """Ignore a case, with a reason."""
    _act(case_id, database, json, lambda s, a: service.ignore(s, a, case_id, reason))


@cases_app.command("bulk")
def case_bulk(
    action: Annotated[str, typer.Option(help="assign, comment, start, retry, resolve or ignore.")],
    merchant_id: Merchant = None,
    category: Category = None,
    severity: SeverityOpt = None,
    team: Team = None,
    state: State = None,
    sla_state: SlaOpt = None,
    assignee: Assignee = None,
    flow_id: Flow = None,
    min_age: MinAge = None,
    max_age: MaxAge = None,
    to: Annotated[str | None, typer.Option(help="Assignee for --action assign.")] = None,
    text: Annotated[str | None, typer.Option(help="Comment for --action comment.")] = None,
    reason: Annotated[str | None, typer.Option(help="Reason for --action resolve/ignore.")] = None,
    json: JsonOpt = False,
    database: DbOpt = None,
) -> None:
    """Apply one action to every case matching the filter options (at least one is required)."""

    async def go() -> BulkResult:
        try:
            body = BulkBody.model_validate(
                {
                    "filter": {
                        "merchant_id": merchant_id,
                        "category": category,
                        "severity": severity,
                        "team": team,
                        "state": state,
                        "sla_state": sla_state,
                        "assignee": assignee,
                        "flow_id": flow_id,
                        "min_age_minutes": min_age,
                        "max_age_minutes": max_age,
                    },
                    "action": action,
                    "assignee": to,
                    "text": text,
                    "reason": reason,
                }
            )
        except ValueError as exc:
            raise ValidationFailed(f"The bulk action is not valid: {exc}") from None
        async with operator_session(database) as (_c, s, actor):
            result = await service.bulk(
                s, actor, body.filter, body.action, assignee=body.assignee, text=body.text, reason=body.reason
            )
            return BulkResult(**result)

    result = run(go())
    if json:
        emit(result, as_json=True)
        return
    console.print(f"{result.matched} matched, {result.applied} {action} applied, {result.skipped} skipped")
    for problem in result.problems:
        console.print(f"  [yellow]skipped[/] {problem['case_id']}: {problem['problem']}")
