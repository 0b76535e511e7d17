"""Secrets at rest: Fernet encryption with key rotation (MultiFernet).

The master key(s) come from `CROSSDOCK_MASTER_KEY` (comma-separated, newest first) or from a key file
(`CROSSDOCK_MASTER_KEY_FILE`, default `<home>/master.key`), never from the database, and are never
logged. In the embedded mode a key file is generated on first use with mode 0600.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from crossdock.core.errors import CrossdockError, ErrorCode
from crossdock.core.settings import Settings

log = logging.getLogger("crossdock.secrets")


class SecretBox:
    """Encrypts and decrypts JSON secrets with the newest key; decrypts with any listed key."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise CrossdockError("No master key configured.", code=ErrorCode.CONFIGURATION)
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except (ValueError, TypeError) as exc:
            raise CrossdockError(
                "The master key is not a valid Fernet key (32 url-safe base64-encoded bytes). "
                "Generate one with `crossdock keys generate`.",
                code=ErrorCode.CONFIGURATION,
            ) from exc
        self.key_count = len(keys)

    def encrypt(self, secrets: dict[str, Any]) -> str:
        return self._fernet.encrypt(orjson.dumps(secrets)).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        try:
            value: dict[str, Any] = orjson.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise CrossdockError(
                "Stored secrets cannot be decrypted with the configured master key(s); "
                "add the previous key after the new one in CROSSDOCK_MASTER_KEY.",
                code=ErrorCode.CONFIGURATION,
            ) from exc
        return value

    def rotate(self, token: str) -> str:
        """Re-encrypt with the newest key (after a new key was put first)."""
        return self._fernet.rotate(token.encode()).decode()


def generate_key() -> str:
    return Fernet.generate_key().decode()


def load_secret_box(settings: Settings) -> SecretBox:
    if settings.master_key is not None:
        return SecretBox([k for k in settings.master_key.get_secret_value().split(",") if k.strip()])
    path = settings.master_key_file or (settings.home / "master.key")
    if not path.exists():
        if not settings.is_sqlite:
            raise CrossdockError(
                f"No master key: set CROSSDOCK_MASTER_KEY or create {path} on every node "
                "(the same key everywhere; generate it with `crossdock keys generate`).",
                code=ErrorCode.CONFIGURATION,
            )
        _write_new_key(path)
        log.warning("generated a new master key file", extra={"path": str(path)})
    keys = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return SecretBox(keys)


def _write_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(generate_key() + "\n")
