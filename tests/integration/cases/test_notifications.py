"""Notifications: queued with the case, delivered after commit to a real SMTP server (aiosmtpd) and a real
chat webhook receiver, retried after a failure, and delivered exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request, Response
from sqlalchemy import select

from crossdock.bootstrap import Container
from crossdock.cases import routing
from crossdock.cases.models import CaseNotification
from crossdock.cases.notifications import deliver_pending
from crossdock.cases.schemas import TeamCreate
from crossdock.cases.sla import escalate_due
from crossdock.connections import service as connections
from crossdock.connections.schemas import ConnectionCreate
from crossdock.connectors.sandbox.serve import BackgroundServer, free_port, serve_in_thread
from crossdock.core.clock import utcnow
from crossdock.core.tenancy import Scope
from tests.factories import World

from .conftest import SYSTEM, failure, open_case


class FlakySmtp:
    """Refuses the first message with 451 (try again later), then keeps every message it accepts."""

    def __init__(self) -> None:
        self.attempts = 0
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.attempts == 1:
            return "451 Requested action aborted: try again later"
        subject = str(message_from_bytes(envelope.content, policy=default)["Subject"])
        self.messages.append((list(envelope.rcpt_tos), subject))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[FlakySmtp, int]]:
    handler = FlakySmtp()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def chat() -> Iterator[tuple[list[dict[str, Any]], BackgroundServer]]:
    """A Slack-style webhook receiver: answers 500 to the first post, 200 afterwards."""
    received: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        received.append(await request.json())
        return Response(status_code=500 if len(received) == 1 else 200)

    with serve_in_thread(app) as server:
        yield received, server


async def _team(container: Container, world: World, smtp_port: int, chat_url: str) -> None:
    box, registry = container.secrets, container.connectors
    async with container.db.session(SYSTEM.scope) as s:
        mail = await connections.create_connection(
            s,
            SYSTEM,
            ConnectionCreate(
                merchant_id=world.ids["M1a"],
                system="smtp",
                name="mail",
                config={"host": "127.0.0.1", "port": smtp_port, "starttls": False, "sender": "desk@partner.test"},
            ),
            registry=registry,
            box=box,
        )
        hook = await connections.create_connection(
            s,
            SYSTEM,
            ConnectionCreate(
                merchant_id=world.ids["M1a"], system="chat", name="slack", secrets={"webhook_url": chat_url}
            ),
            registry=registry,
            box=box,
        )
        await routing.create_team(
            s,
            SYSTEM,
            TeamCreate(
                name="catalog",
                merchant_id=world.ids["M1a"],
                emails=["catalog@aurora.test"],
                email_connection_id=mail.id,
                chat_connection_id=hook.id,
            ),
        )


async def _outbox(container: Container) -> list[tuple[str, str, str, int]]:
    async with container.db.session(Scope.everything()) as s:
        rows = await s.scalars(select(CaseNotification).order_by(CaseNotification.reason, CaseNotification.channel))
        return [(n.reason, n.channel, n.status, n.attempts) for n in rows.all()]


async def test_open_and_breach_notify_once_each_despite_a_failed_first_delivery(
    container: Container, world: World, smtp: tuple[FlakySmtp, int], chat: tuple[list[dict[str, Any]], Any]
) -> None:
    handler, port = smtp
    posts, server = chat
    await _team(container, world, port, f"{server.url}/hook")
    t0 = utcnow()

    case = await open_case(container, failure(world, "M1a", cause="SKU X-1"), now=t0)
    assert await _outbox(container) == [("opened", "chat", "pending", 0), ("opened", "email", "pending", 0)]
    assert (handler.attempts, posts) == (0, [])  # nothing is sent inside the transaction

    first = await deliver_pending(container, now=t0)
    too_early = await deliver_pending(container, now=t0 + timedelta(seconds=5))
    retried = await deliver_pending(container, now=t0 + timedelta(minutes=1))
    nothing_left = await deliver_pending(container, now=t0 + timedelta(hours=2))

    assert (first, too_early) == ({"delivered": 0, "failed": 2}, {"delivered": 0, "failed": 0})
    assert (retried, nothing_left) == ({"delivered": 2, "failed": 0}, {"delivered": 0, "failed": 0})
    assert await _outbox(container) == [("opened", "chat", "delivered", 2), ("opened", "email", "delivered", 2)]
    assert len(handler.messages) == 1
    rcpts, subject = handler.messages[0]
    assert rcpts == ["catalog@aurora.test"]
    assert subject.startswith(f"[medium] Case {case.id} opened: Sku not found at validate")
    assert len(posts) == 2 and posts[0] == posts[1]  # one refused, one accepted: delivered once
    assert posts[1]["text"].startswith(f"[medium] Case {case.id} opened")

    async with container.db.session(SYSTEM.scope) as s:
        await escalate_due(s, t0 + timedelta(hours=25))
    async with container.db.session(SYSTEM.scope) as s:
        await escalate_due(s, t0 + timedelta(hours=25))
    breach = await deliver_pending(container, now=t0 + timedelta(hours=25))

    assert breach == {"delivered": 2, "failed": 0}
    assert len(handler.messages) == 2
    assert handler.messages[1][1].startswith(f"[high] Case {case.id} breached its SLA (escalation 1)")
    assert len(posts) == 3 and posts[2]["text"].startswith(f"[high] Case {case.id} breached its SLA")


async def test_no_team_means_no_notification_and_grouping_does_not_notify_again(
    container: Container, world: World, smtp: tuple[FlakySmtp, int], chat: tuple[list[dict[str, Any]], Any]
) -> None:
    handler, port = smtp
    posts, server = chat
    await _team(container, world, port, f"{server.url}/hook")

    await open_case(container, failure(world, "M1a", category="credit_hold"))  # team finance: not defined
    await open_case(container, failure(world, "M1b"))  # catalog of M1a only, not of its sibling
    assert await _outbox(container) == []

    await open_case(container, failure(world, "M1a"))
    await open_case(container, failure(world, "M1a"))  # grouped: no new notification
    assert [r[:2] for r in await _outbox(container)] == [("opened", "chat"), ("opened", "email")]
    assert (handler.attempts, posts) == (0, [])


async def test_a_team_refuses_foreign_or_wrong_connections(container: Container, world: World) -> None:
    from crossdock.core.errors import ValidationFailed

    async with container.db.session(SYSTEM.scope) as s:
        hook = await connections.create_connection(
            s,
            SYSTEM,
            ConnectionCreate(
                merchant_id=world.ids["M2a"], system="chat", name="x", secrets={"webhook_url": "http://x"}
            ),
            registry=container.connectors,
            box=container.secrets,
        )
    with pytest.raises(ValidationFailed):
        async with container.db.session(SYSTEM.scope) as s:
            await routing.create_team(
                s, SYSTEM, TeamCreate(name="catalog", merchant_id=world.ids["M1a"], chat_connection_id=hook.id)
            )
    with pytest.raises(ValueError, match="email_connection_id"):
        TeamCreate(name="catalog", merchant_id=world.ids["M1a"], emails=["a@b.test"])
