"""Keyset pagination by id: opaque cursors, stable under inserts, the same for every list endpoint."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from crossdock.core.errors import CrossdockError, ErrorCode

T = TypeVar("T")
MAX_LIMIT = 500
_ID = re.compile(r"[a-z]+_[0-9A-Z]{26}")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null on the last page.")


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
        if not _ID.fullmatch(value):
            raise ValueError(value)
        return value
    except (ValueError, UnicodeDecodeError) as exc:
        raise CrossdockError(
            "The cursor is not valid; use the `next_cursor` of a previous page.", code=ErrorCode.BAD_REQUEST
        ) from exc


async def paginate(
    session: AsyncSession, stmt: Select[Any], id_col: Any, *, limit: int, cursor: str | None
) -> tuple[Sequence[Any], str | None]:
    """Run `stmt` ordered by `id_col`, one page at a time. Returns the rows and the next cursor."""
    limit = max(1, min(limit, MAX_LIMIT))
    if cursor:
        stmt = stmt.where(id_col > decode_cursor(cursor))
    rows = (await session.scalars(stmt.order_by(id_col).limit(limit + 1))).all()
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].id)
    return rows, None
