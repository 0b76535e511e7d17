"""ShipStation, email and chat actions over real sockets: upsert on orderKey, SHIP_NOTIFY shipments
(only fetched on the connection's API), SMTP delivery with a stable Message-ID, chat webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crossdock.bootstrap import Container
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.sandbox.serve import free_port, serve_in_thread
from crossdock.connectors.sandbox.server import Sandbox
from crossdock.engine.core import Engine

from .conftest import SandboxServer, add_connection, call, shipstation_connection

ADDRESS = {"name": "Ava Nguyen", "street1": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"}


def ss_order(conn: str, name: str = "Ava Nguyen") -> dict[str, Any]:
    return {
        "connection": conn,
        "order_number": "#1001",
        "order_key": "shopify-5100000000003",
        "order_date": "2025-03-01T12:00:00",
        "bill_to": {**ADDRESS, "name": name},
        "ship_to": {**ADDRESS, "name": name, "country": "US"},
        "items": [{"sku": "SKU-1", "name": "Bicycle", "quantity": 1, "unit_price": 100.0}],
        "amount_paid": 100.0,
    }


@pytest.fixture
async def ss(
    container: Container, merchant: str, sandbox: Sandbox, sandbox_server: SandboxServer, engine: Engine
) -> str:
    return await shipstation_connection(container, merchant, sandbox_server.url)


async def test_shipstation_order_upserts_on_order_key(engine: Engine, merchant: str, ss: str, sandbox: Sandbox) -> None:
    first = await call(engine, merchant, "shipstation.create_order", ss_order(ss))
    again = await call(engine, merchant, "shipstation.create_order", ss_order(ss, name="Ava N."))

    assert (first["order_key"], first["order_number"], first["order_status"]) == (
        "shopify-5100000000003",
        "#1001",
        "awaiting_shipment",
    )
    assert again["order_id"] == first["order_id"]
    assert sandbox.shipstation.counters()["orders"] == 1
    assert sandbox.shipstation.order(first["order_id"])["shipTo"]["name"] == "Ava N."


async def test_shipstation_shipments_only_from_its_own_api(
    engine: Engine, merchant: str, ss: str, sandbox: Sandbox, sandbox_server: SandboxServer
) -> None:
    order = await call(engine, merchant, "shipstation.create_order", ss_order(ss))
    shipment = sandbox.shipstation.ship(order["order_id"], tracking_number="1ZTRACK")
    url = f"{sandbox_server.url}/shipstation/shipments?batchId={shipment['batchNumber']}&includeShipmentItems=False"

    out = await call(engine, merchant, "shipstation.get_shipments", {"connection": ss, "resource_url": url})
    with pytest.raises(ConnectorError) as caught:
        await call(
            engine, merchant, "shipstation.get_shipments", {"connection": ss, "resource_url": "https://evil.test/x"}
        )

    assert [(s["orderKey"], s["trackingNumber"]) for s in out["shipments"]] == [("shopify-5100000000003", "1ZTRACK")]
    assert (caught.value.kind, caught.value.vendor_code) == (FailureKind.AUTH, "foreign_resource_url")


# -- email ------------------------------------------------------------------------------------------
class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_email_send_with_stable_message_id(
    container: Container, engine: Engine, merchant: str, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    conn = await add_connection(
        container,
        merchant,
        "smtp",
        {"host": "127.0.0.1", "port": port, "starttls": False, "sender": "ops@aurora.test"},
        {},
    )
    data = {"connection": conn, "to": ["buyer@example.test"], "subject": "Shipped", "text": "Your order shipped."}

    first = await call(engine, merchant, "email.send", data, key="mail-1")
    again = await call(engine, merchant, "email.send", data, key="mail-1")

    assert first == again
    assert first["recipients"] == ["buyer@example.test"]
    assert [(m[0], m[1]) for m in inbox.messages] == [("ops@aurora.test", ["buyer@example.test"])] * 2
    parsed = message_from_bytes(inbox.messages[0][2])
    assert (parsed["Message-ID"], parsed["Subject"], parsed.get_payload().strip()) == (
        first["message_id"],
        "Shipped",
        "Your order shipped.",
    )


# -- chat -------------------------------------------------------------------------------------------
@pytest.fixture
def chat_receiver() -> Iterator[tuple[list[Any], str]]:
    received: list[Any] = []

    async def hook(request: Request) -> Response:
        received.append(await request.json())
        return Response("ok")

    async def gone(request: Request) -> Response:
        return Response("no_service", status_code=404)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/gone", gone, methods=["POST"])])
    with serve_in_thread(app) as server:
        yield received, server.url


async def test_chat_post_slack_and_teams_and_revoked_hook(
    container: Container, engine: Engine, merchant: str, chat_receiver: tuple[list[Any], str]
) -> None:
    received, url = chat_receiver
    slack = await add_connection(container, merchant, "chat", {"flavor": "slack"}, {"webhook_url": f"{url}/hook"})
    teams = await add_connection(container, merchant, "chat", {"flavor": "teams"}, {"webhook_url": f"{url}/hook"})
    revoked = await add_connection(container, merchant, "chat", {}, {"webhook_url": f"{url}/gone"})

    s = await call(engine, merchant, "chat.post", {"connection": slack, "text": "Order held", "title": "Credit"})
    t = await call(engine, merchant, "chat.post", {"connection": teams, "text": "Order held", "title": "Credit"})
    with pytest.raises(ConnectorError) as caught:
        await call(engine, merchant, "chat.post", {"connection": revoked, "text": "x"})

    assert (s, t) == ({"status": 200, "flavor": "slack"}, {"status": 200, "flavor": "teams"})
    assert received == [{"text": "*Credit*\nOrder held"}, {"text": "Order held", "title": "Credit"}]
    assert (caught.value.kind, caught.value.category, caught.value.status) == (
        FailureKind.CONFIG,
        FailureCategory.AUTH,
        404,
    )
