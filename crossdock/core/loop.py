"""Running Crossdock's long-lived processes on the fastest event loop available (uvloop)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on uvloop when it is installed (it ships with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        return asyncio.run(coro)
    return uvloop.run(coro)
