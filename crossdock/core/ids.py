"""Sortable, prefixed identifiers (`mer_01J...`): time-ordered like ULIDs, so cursors page by id."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32


def _b32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def new_ulid() -> str:
    """48 bits of milliseconds and 80 random bits, as 26 Crockford base32 characters."""
    ms = time.time_ns() // 1_000_000
    return _b32(ms, 10) + _b32(int.from_bytes(os.urandom(10), "big"), 16)


def new_id(prefix: str) -> str:
    return f"{prefix}_{new_ulid()}"
