"""Business operations on connections: create, update, test, rotate keys. Secrets never leave encrypted
except into a connector client, and never into logs or the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.connections.models import Connection
from crossdock.connections.schemas import ConnectionCreate, ConnectionUpdate
from crossdock.connectors.base import ConnectorRegistry, ProbeResult
from crossdock.core.clock import utcnow
from crossdock.core.context import Actor
from crossdock.core.errors import Conflict
from crossdock.core.ids import new_id
from crossdock.core.pagination import paginate
from crossdock.core.repository import get_visible
from crossdock.core.secrets import SecretBox
from crossdock.governance.audit import record
from crossdock.tenants import service as tenants


def _summary(conn: Connection) -> dict[str, Any]:
    return {
        "system": conn.system,
        "name": conn.name,
        "environment": conn.environment,
        "config": conn.config,
        "secret_fields": conn.secret_fields,
        "status": conn.status,
    }


async def create_connection(
    session: AsyncSession, actor: Actor, data: ConnectionCreate, *, registry: ConnectorRegistry, box: SecretBox
) -> Connection:
    merchant = await tenants.get_merchant(session, data.merchant_id)
    spec = registry.get(data.system)
    config, secrets = spec.parse(data.config, data.secrets)
    conn = Connection(
        id=new_id("con"),
        partner_id=merchant.partner_id,
        merchant_id=merchant.id,
        environment=data.environment,
        system=spec.system,
        name=data.name,
        config=config.model_dump(mode="json"),
        secrets_ciphertext=box.encrypt(secrets.model_dump(mode="json")),
        secret_fields=sorted(k for k, v in secrets.model_dump().items() if v not in (None, [], "")),
    )
    session.add(conn)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A connection named {data.name!r} already exists for this merchant and environment.") from exc
    record(
        session,
        actor,
        "connections.connection.create",
        target_type="connection",
        target_id=conn.id,
        partner_id=conn.partner_id,
        merchant_id=conn.merchant_id,
        after=_summary(conn),
    )
    return conn


async def get_connection(session: AsyncSession, connection_id: str) -> Connection:
    return await get_visible(session, Connection, connection_id, "connection")


async def update_connection(
    session: AsyncSession,
    actor: Actor,
    connection_id: str,
    data: ConnectionUpdate,
    *,
    registry: ConnectorRegistry,
    box: SecretBox,
) -> Connection:
    conn = await get_connection(session, connection_id)
    before = _summary(conn)
    spec = registry.get(conn.system)
    new_config = data.config if data.config is not None else conn.config
    new_secrets = data.secrets if data.secrets is not None else box.decrypt(conn.secrets_ciphertext)
    config, secrets = spec.parse(new_config, new_secrets)
    conn.config = config.model_dump(mode="json")
    if data.secrets is not None:
        conn.secrets_ciphertext = box.encrypt(secrets.model_dump(mode="json"))
        conn.secret_fields = sorted(k for k, v in secrets.model_dump().items() if v not in (None, [], ""))
    if data.status:
        conn.status = data.status
    await session.flush()
    after = _summary(conn) | ({"secrets_changed": True} if data.secrets is not None else {})
    record(
        session,
        actor,
        "connections.connection.update",
        target_type="connection",
        target_id=conn.id,
        partner_id=conn.partner_id,
        merchant_id=conn.merchant_id,
        before=before,
        after=after,
    )
    return conn


async def list_connections(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    merchant_id: str | None = None,
    system: str | None = None,
    status: str | None = None,
    environment: str | None = None,
) -> tuple[Sequence[Connection], str | None]:
    stmt = select(Connection)
    for column, value in (
        (Connection.merchant_id, merchant_id),
        (Connection.system, system),
        (Connection.status, status),
        (Connection.environment, environment),
    ):
        if value:
            stmt = stmt.where(column == value)
    return await paginate(session, stmt, Connection.id, limit=limit, cursor=cursor)


def credentials(conn: Connection, registry: ConnectorRegistry, box: SecretBox) -> tuple[BaseModel, BaseModel]:
    """The parsed config and decrypted secrets, for building a connector client."""
    return registry.get(conn.system).parse(conn.config, box.decrypt(conn.secrets_ciphertext))


async def test_connection(
    session: AsyncSession, actor: Actor, connection_id: str, *, registry: ConnectorRegistry, box: SecretBox
) -> ProbeResult:
    """Check reachability and credentials; store and audit the diagnosis."""
    conn = await get_connection(session, connection_id)
    spec = registry.get(conn.system)
    config, secrets = credentials(conn, registry, box)
    if spec.probe is None:
        result = ProbeResult(ok=True, summary=f"{spec.title}: configuration is valid (no live probe for this system).")
    else:
        result = await spec.probe(config, secrets)
    conn.last_tested_at = utcnow()
    conn.last_test = {"ok": result.ok, "summary": result.summary, "checks": result.checks}
    await session.flush()
    record(
        session,
        actor,
        "connections.connection.test",
        target_type="connection",
        target_id=conn.id,
        partner_id=conn.partner_id,
        merchant_id=conn.merchant_id,
        after={"ok": result.ok, "summary": result.summary},
    )
    return result


async def rotate_keys(session: AsyncSession, actor: Actor, box: SecretBox) -> int:
    """Re-encrypt every connection's secrets with the newest master key. Returns how many."""
    rows = (await session.scalars(select(Connection))).all()
    for conn in rows:
        conn.secrets_ciphertext = box.rotate(conn.secrets_ciphertext)
    await session.flush()
    record(
        session,
        actor,
        "connections.keys.rotate",
        target_type="installation",
        target_id="secrets",
        partner_id=None,
        merchant_id=None,
        after={"connections": len(rows), "keys": box.key_count},
    )
    return len(rows)
