"""Shared query parameters and response helpers for list endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query
from pydantic import BaseModel

from crossdock.core.pagination import Page

S = TypeVar("S", bound=BaseModel)

Limit = Annotated[int, Query(ge=1, le=500, description="Page size (default 50, at most 500).")]
Cursor = Annotated[str | None, Query(description="The `next_cursor` of the previous page.")]


def to_page(schema: type[S], rows: Sequence[Any], next_cursor: str | None) -> Page[S]:
    return Page[schema](items=[schema.model_validate(r) for r in rows], next_cursor=next_cursor)  # type: ignore[valid-type]
