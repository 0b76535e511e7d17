"""Writing audit events. Callers pass their session, so the event commits with the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.core.context import Actor
from crossdock.core.ids import new_id
from crossdock.governance.models import AuditEvent

REDACTED_KEYS = frozenset({"token", "token_hash", "secret", "password", "client_secret", "credentials"})


def summarize(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """A before/after summary safe to store: secrets are never written to the audit trail."""
    if values is None:
        return None
    return {k: ("[redacted]" if k in REDACTED_KEYS else v) for k, v in values.items()}


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    target_type: str,
    target_id: str,
    partner_id: str | None,
    merchant_id: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event for `action` (`domain.object.verb`) to the caller's transaction."""
    event = AuditEvent(
        id=new_id("aud"),
        actor_type=actor.principal_type,
        actor_id=actor.principal_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        partner_id=partner_id,
        merchant_id=merchant_id,
        before=summarize(before),
        after=summarize(after),
        request_id=actor.request_id,
    )
    session.add(event)
    return event
