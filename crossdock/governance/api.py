"""HTTP routes for reading the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy import select

from crossdock.core.context import Actor
from crossdock.core.pagination import Page, paginate
from crossdock.core.schemas import Output
from crossdock.governance.models import AuditEvent
from crossdock.identity.permissions import Permission as P
from crossdock.web.deps import ContainerDep, require
from crossdock.web.params import Cursor, Limit, to_page

router = APIRouter(prefix="/v1", tags=["audit"])


class AuditEventOut(Output):
    id: str
    at: datetime
    actor_type: str
    actor_id: str
    action: str
    target_type: str
    target_id: str
    partner_id: str | None
    merchant_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


@router.get("/audit-events", response_model=Page[AuditEventOut])
async def list_audit_events(
    c: ContainerDep,
    actor: Annotated[Actor, Depends(require(P.AUDIT_READ))],
    limit: Limit = 50,
    cursor: Cursor = None,
    action: str | None = None,
    target_id: str | None = None,
    actor_id: str | None = None,
    merchant_id: str | None = None,
    since: datetime | None = None,
) -> Page[AuditEventOut]:
    stmt = select(AuditEvent)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if target_id:
        stmt = stmt.where(AuditEvent.target_id == target_id)
    if actor_id:
        stmt = stmt.where(AuditEvent.actor_id == actor_id)
    if merchant_id:
        stmt = stmt.where(AuditEvent.merchant_id == merchant_id)
    if since:
        stmt = stmt.where(AuditEvent.at >= since)
    async with c.db.session(actor.scope) as s:
        rows, nxt = await paginate(s, stmt, AuditEvent.id, limit=limit, cursor=cursor)
        return to_page(AuditEventOut, rows, nxt)
