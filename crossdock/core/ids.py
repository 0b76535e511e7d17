"""Sortable, prefixed identifiers (`mer_01J...`): time-ordered like ULIDs, so cursors page by id.

Ids are minted on every webhook and request, so this is on the hot path: the random part comes from
a buffer of `os.urandom` bytes refilled a few kilobytes at a time (one system call per ~400 ids
instead of one per id; the bytes are the kernel's CSPRNG output either way), and it is encoded with
the C base32 codec and a translation table instead of a per-character loop. A forked child drops the
parent's buffer, so two processes never hand out the same random tail.
"""

from __future__ import annotations

import base64
import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_RFC4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TO_CROCKFORD = bytes.maketrans(_RFC4648.encode(), _ALPHABET.encode())
_POOL_BYTES = 4096


def _b32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


class _RandomPool:
    """CSPRNG bytes handed out in slices; thread-safe, and emptied in a forked child."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            end = self._pos + n
            if end > len(self._buf):
                self._buf, self._pos, end = os.urandom(max(_POOL_BYTES, n)), 0, n
            chunk = self._buf[self._pos : end]
            self._pos = end
            return chunk

    def clear(self) -> None:
        self._lock = threading.Lock()  # a lock held by another thread at fork time stays held in the child
        self._buf, self._pos = b"", 0


_pool = _RandomPool()
os.register_at_fork(after_in_child=_pool.clear)

_last: tuple[int, str] = (-1, "")  # (millisecond, its 10 characters), swapped as one object


def random_bytes(n: int) -> bytes:
    """`n` bytes of the kernel's CSPRNG output, via the process's buffer. Ids made from them are
    unguessable (80 random bits) and some act as capabilities (a generic webhook endpoint without a
    secret is reached by its `trg_` id); keys and tokens still come from `secrets` directly."""
    return _pool.take(n)


def new_ulid() -> str:
    """48 bits of milliseconds and 80 random bits, as 26 Crockford base32 characters."""
    global _last
    ms = time.time_ns() // 1_000_000
    last_ms, prefix = _last
    if ms != last_ms:  # several ids share a millisecond under load: encode its prefix once
        prefix = _b32(ms, 10)
        _last = (ms, prefix)
    # 80 random bits are exactly 16 base32 characters: no padding; the alphabet is mapped 1:1.
    return prefix + base64.b32encode(_pool.take(10)).translate(_TO_CROCKFORD).decode()


def new_id(prefix: str) -> str:
    return f"{prefix}_{new_ulid()}"
