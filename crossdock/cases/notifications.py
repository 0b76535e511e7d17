"""Telling a case's team: an outbox written in the case's transaction, delivered after commit.

`enqueue` adds one `case_notifications` row per target (the team's email addresses through its SMTP
connection, and its chat connection) with a unique dedup key, so a notification is queued once per
(case, reason, escalation level, channel). `deliver_pending` (called by the runtime loop) claims due
rows, sends them outside any transaction and marks them delivered; a failed send is retried with
backoff and never dropped. Delivery is at least once: a crash between sending and marking can repeat
one message, never lose it.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.cases.models import Case, CaseNotification
from crossdock.cases.routing import team_for
from crossdock.connections import service as connections
from crossdock.core.clock import utcnow
from crossdock.core.ids import new_id
from crossdock.core.tenancy import Scope

log = logging.getLogger("crossdock.cases.notifications")

LEASE = timedelta(seconds=120)
MAX_BACKOFF = timedelta(hours=1)


def _text(case: Case, reason: str) -> tuple[str, str]:
    headline = "opened" if reason == "opened" else f"breached its SLA (escalation {case.escalation_level})"
    subject = f"[{case.severity}] Case {case.id} {headline}: {case.title}"[:300]
    body = "\n".join(
        [
            case.title,
            "",
            f"Team: {case.team}    Severity: {case.severity}    Category: {case.category}",
            f"Merchant: {case.merchant_id}    Occurrences: {case.occurrences}",
            f"SLA due: {case.sla_due_at.isoformat()}",
            f"Run: {case.run_id} (step {case.step_path})",
            "",
            f"Details: /v1/cases/{case.id}    CLI: crossdock case show {case.id}",
        ]
    )
    return subject, body


async def enqueue(session: AsyncSession, case: Case, reason: str, *, now: datetime | None = None) -> int:
    """Queue the notifications of `case` for `reason` (opened | breached) to its team; returns how many."""
    team = await team_for(session, case.partner_id, case.merchant_id, case.team)
    if team is None:
        return 0
    subject, body = _text(case, reason)
    targets: list[tuple[str, str, list[str]]] = []
    if team.emails and team.email_connection_id:
        targets.append(("email", team.email_connection_id, list(team.emails)))
    if team.chat_connection_id:
        targets.append(("chat", team.chat_connection_id, []))
    for channel, connection_id, recipients in targets:
        key = f"{case.id}:{reason}:{case.escalation_level}:{channel}"
        if await session.scalar(select(CaseNotification.id).where(CaseNotification.dedup_key == key)):
            continue
        session.add(
            CaseNotification(
                id=new_id("ntf"),
                dedup_key=key,
                case_id=case.id,
                reason=reason,
                channel=channel,
                connection_id=connection_id,
                recipients=recipients,
                subject=subject,
                body=body,
                status="pending",
                attempts=0,
                next_attempt_at=now or utcnow(),
                partner_id=case.partner_id,
                merchant_id=case.merchant_id,
            )
        )
    return len(targets)


def _send_email(config: Any, secrets: Any, recipients: list[str], subject: str, body: str) -> None:
    msg = EmailMessage()
    msg["From"] = config.sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg.set_content(body)
    with smtplib.SMTP(config.host, config.port, timeout=15) as smtp:
        smtp.ehlo()
        if config.starttls and smtp.has_extn("starttls"):
            smtp.starttls()
            smtp.ehlo()
        if secrets.username:
            smtp.login(secrets.username, secrets.password or "")
        smtp.send_message(msg)


async def _send(http: httpx.AsyncClient, row: dict[str, Any], config: Any, secrets: Any) -> None:
    if row["channel"] == "email":
        await asyncio.to_thread(_send_email, config, secrets, row["recipients"], row["subject"], row["body"])
        return
    resp = await http.post(secrets.webhook_url, json={"text": f"{row['subject']}\n\n{row['body']}"}, timeout=15)
    resp.raise_for_status()


def backoff(attempts: int) -> timedelta:
    return min(MAX_BACKOFF, timedelta(seconds=30 * 2 ** max(0, attempts - 1)))


async def deliver_pending(container: Any, *, now: datetime | None = None, limit: int = 100) -> dict[str, int]:
    """Send due notifications; returns {"delivered", "failed"}. Safe to run from many processes."""
    now = now or utcnow()
    claimed: list[tuple[dict[str, Any], Any, Any]] = []
    async with container.db.session(Scope.everything()) as s:
        due = (
            await s.scalars(
                select(CaseNotification)
                .where(CaseNotification.status == "pending", CaseNotification.next_attempt_at <= now)
                .order_by(CaseNotification.next_attempt_at)
                .limit(limit)
            )
        ).all()
        for row in due:
            won = await s.execute(
                update(CaseNotification)
                .where(
                    CaseNotification.id == row.id,
                    CaseNotification.status == "pending",
                    CaseNotification.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + LEASE, attempts=CaseNotification.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            if getattr(won, "rowcount", 0) != 1:
                continue  # another process claimed it
            config = secrets = None
            try:
                conn = await connections.get_connection(s, row.connection_id)
                config, secrets = connections.credentials(conn, container.connectors, container.secrets)
            except Exception as exc:  # a deleted or broken connection is reported on the row, then retried
                log.warning("notification %s: connection %s unusable: %s", row.id, row.connection_id, exc)
            fields = ("id", "channel", "recipients", "subject", "body", "attempts", "connection_id")
            claimed.append(({f: getattr(row, f) for f in fields}, config, secrets))
    if not claimed:
        return {"delivered": 0, "failed": 0}  # nothing due: no HTTP client (it loads the CA bundle, ~20 ms)
    results: dict[str, str | None] = {}
    async with httpx.AsyncClient() as http:
        for row, config, secrets in claimed:
            try:
                if config is None:
                    raise RuntimeError(f"connection {row['connection_id']} is missing or unreadable")
                await _send(http, row, config, secrets)
                results[row["id"]] = None
            except Exception as exc:
                log.warning("notification %s failed (attempt %d): %s", row["id"], row["attempts"] + 1, exc)
                results[row["id"]] = f"{type(exc).__name__}: {exc}"[:1000]
    async with container.db.session(Scope.everything()) as s:
        for row, _c, _s in claimed:
            error = results[row["id"]]
            values: dict[str, Any]
            if error is None:
                values = {"status": "delivered", "delivered_at": utcnow(), "last_error": None}
            else:
                values = {"last_error": error, "next_attempt_at": now + backoff(row["attempts"] + 1)}
            await s.execute(
                update(CaseNotification)
                .where(CaseNotification.id == row["id"])
                .values(**values)
                .execution_options(synchronize_session=False)
            )
    failed = sum(1 for e in results.values() if e is not None)
    return {"delivered": len(results) - failed, "failed": failed}
