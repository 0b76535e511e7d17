"""Small helpers every service uses to load scoped rows and refuse invisible ones with 404."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.core.errors import NotFound

M = TypeVar("M")


async def get_visible(session: AsyncSession, model: type[M], ident: str, what: str) -> M:
    """The row with this id if the session's scope can see it; otherwise 404, never 403."""
    row: M | None = await session.scalar(select(model).where(model.id == ident))  # type: ignore[attr-defined,arg-type]
    if row is None:
        raise NotFound(what, ident)
    return row


def slugify(value: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")
    return slug[:80] or "tenant"


def snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """The audit summary of an object: the named fields, as plain values."""
    out: dict[str, Any] = {}
    for f in fields:
        v = getattr(obj, f)
        out[f] = v.isoformat() if hasattr(v, "isoformat") else v
    return out
