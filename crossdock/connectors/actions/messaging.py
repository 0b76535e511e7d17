"""Notification actions: `email.send` through an SMTP connection and `chat.post` to a Slack/Teams webhook.

Neither channel has an idempotency key of its own. Email carries a `Message-ID` derived from the
step's idempotency key, so a replayed send is recognisable (and collapsed by most mail stores);
chat relies on the engine's effect ledger. Both are rate-budgeted like every connection.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
from pydantic import Field

from crossdock.connectors.actions.pool import PooledClient, RateBudget
from crossdock.connectors.actions.spec import ActionInput, ActionOutput, ConnectorAction, digest
from crossdock.connectors.builtin import ChatConfig, ChatSecrets, SmtpConfig, SmtpSecrets
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.transport import float_header
from crossdock.engine.actions import ActionContext

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"


# -- email ------------------------------------------------------------------------------------------
@dataclass
class Mailer:
    """Sends through one SMTP connection (stdlib smtplib in a worker thread)."""

    config: SmtpConfig
    secrets: SmtpSecrets
    acquire: Any
    timeout_s: float = 30.0

    async def send(self, message: EmailMessage) -> None:
        await self.acquire()
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.config.host, self.config.port, timeout=self.timeout_s) as smtp:
                if self.config.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.secrets.username:
                    smtp.login(self.secrets.username, self.secrets.password or "")
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise _smtp_error(
                f"SMTP login was refused ({exc.smtp_code})", FailureKind.AUTH, FailureCategory.AUTH
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise _smtp_error(
                f"The SMTP server refused every recipient: {', '.join(exc.recipients)}",
                FailureKind.DATA,
                FailureCategory.VALIDATION,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            kind = FailureKind.TRANSIENT if 400 <= exc.smtp_code < 500 else FailureKind.DATA
            category = FailureCategory.CONNECTION if kind is FailureKind.TRANSIENT else FailureCategory.VALIDATION
            raise _smtp_error(f"The SMTP server answered {exc.smtp_code}", kind, category) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise _smtp_error(
                f"Could not talk to {self.config.host}:{self.config.port} ({type(exc).__name__})",
                FailureKind.TRANSIENT,
                FailureCategory.CONNECTION,
            ) from exc


def _smtp_error(message: str, kind: FailureKind, category: FailureCategory) -> ConnectorError:
    return ConnectorError(f"{message}.", kind=kind, category=category, system="smtp")


def build_mailer(config: Any, secrets: Any, *, acquire: Any, budget: RateBudget) -> Mailer:
    assert isinstance(config, SmtpConfig) and isinstance(secrets, SmtpSecrets)
    return Mailer(config, secrets, acquire)


class EmailIn(ActionInput):
    to: list[str] = Field(min_length=1, max_length=50)
    cc: list[str] = Field(default_factory=list, max_length=50)
    reply_to: str | None = Field(None, pattern=EMAIL_PATTERN)
    subject: str = Field(min_length=1, max_length=998)
    text: str = Field(description="Plain-text body.")
    html: str | None = Field(None, description="Optional HTML alternative.")


class EmailOut(ActionOutput):
    message_id: str
    recipients: list[str]


async def send_email(ctx: ActionContext, conn: PooledClient, data: EmailIn) -> EmailOut:
    mailer = conn.client
    assert isinstance(mailer, Mailer)
    sender = mailer.config.sender
    message = EmailMessage()
    message_id = f"<{digest(ctx.idempotency_key, 32)}@{sender.rsplit('@', 1)[1]}>"
    message["Message-ID"] = message_id
    message["From"] = sender
    message["To"] = ", ".join(data.to)
    if data.cc:
        message["Cc"] = ", ".join(data.cc)
    if data.reply_to:
        message["Reply-To"] = data.reply_to
    message["Subject"] = data.subject
    message.set_content(data.text)
    if data.html:
        message.add_alternative(data.html, subtype="html")
    await mailer.send(message)
    return EmailOut(message_id=message_id, recipients=[*data.to, *data.cc])


# -- chat -------------------------------------------------------------------------------------------
@dataclass
class ChatWebhook:
    """Posts JSON to one incoming-webhook URL."""

    url: str
    flavor: str
    acquire: Any
    http: httpx.AsyncClient

    async def post(self, body: dict[str, Any]) -> int:
        await self.acquire()
        try:
            response = await self.http.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise ConnectorError(
                f"Could not reach the chat webhook ({type(exc).__name__}).",
                kind=FailureKind.TRANSIENT,
                category=FailureCategory.CONNECTION,
                system="chat",
            ) from exc
        status = response.status_code
        if status < 300:
            return status
        if status == 429 or status >= 500:
            raise ConnectorError(
                f"The chat webhook answered HTTP {status}.",
                kind=FailureKind.TRANSIENT,
                category=FailureCategory.RATE_LIMIT if status == 429 else FailureCategory.CONNECTION,
                system="chat",
                status=status,
                retry_after=float_header(response, "retry-after"),
            )
        # 403/404/410: the webhook was revoked or the channel archived; 400: the message itself.
        kind = FailureKind.DATA if status == 400 else FailureKind.CONFIG
        category = FailureCategory.VALIDATION if status == 400 else FailureCategory.AUTH
        raise ConnectorError(
            f"The chat webhook answered HTTP {status}: {response.text[:200]}",
            kind=kind,
            category=category,
            system="chat",
            status=status,
        )

    async def aclose(self) -> None:
        await self.http.aclose()


def build_chat(config: Any, secrets: Any, *, acquire: Any, budget: RateBudget) -> ChatWebhook:
    assert isinstance(config, ChatConfig) and isinstance(secrets, ChatSecrets)
    return ChatWebhook(secrets.webhook_url, config.flavor, acquire, httpx.AsyncClient(timeout=10.0))


class ChatIn(ActionInput):
    text: str = Field(min_length=1, max_length=40_000)
    title: str | None = Field(None, max_length=200, description="Teams card title / bold first line on Slack.")
    blocks: list[dict[str, Any]] | None = Field(None, description="Slack Block Kit blocks (Slack only).")


class ChatOut(ActionOutput):
    status: int
    flavor: str


async def post_chat(ctx: ActionContext, conn: PooledClient, data: ChatIn) -> ChatOut:
    hook = conn.client
    assert isinstance(hook, ChatWebhook)
    if hook.flavor == "teams":
        body: dict[str, Any] = {"text": data.text, **({"title": data.title} if data.title else {})}
    else:
        text = f"*{data.title}*\n{data.text}" if data.title else data.text
        body = {"text": text, **({"blocks": data.blocks} if data.blocks else {})}
    return ChatOut(status=await hook.post(body), flavor=hook.flavor)


ACTIONS = [
    ConnectorAction(
        "email.send", "smtp", EmailIn, EmailOut, send_email,
        "engine effect ledger; Message-ID derived from the step's idempotency key", "Send an email over SMTP.",
    ),
    ConnectorAction(
        "chat.post", "chat", ChatIn, ChatOut, post_chat, "engine effect ledger",
        "Post a message to a Slack or Teams incoming webhook.",
    ),
]  # fmt: skip
