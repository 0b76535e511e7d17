"""The one settings tree (env prefix `CROSSDOCK_`). Defaults are the embedded single-machine mode."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Interface the API binds to. Use 0.0.0.0 behind a load balancer.")
    port: int = Field(8700, description="TCP port of the API.")
    max_body_bytes: int = Field(
        2 * 1024 * 1024, description="Largest accepted request body; larger ones get 413 payload_too_large."
    )
    public_url: str | None = Field(None, description="Externally visible base URL, used in links and webhooks.")
    intake_concurrency: int = Field(
        2,
        description="Webhook group commits an API process keeps in flight at once (PostgreSQL; SQLite writes "
        "one at a time). More shortens acknowledgements under load; each still batches what is queued.",
    )
    opentelemetry: bool = Field(
        False,
        description="FastAPI's native OpenTelemetry spans, metrics and logs (through the global providers). "
        "Off by default: Crossdock exports Prometheus metrics at /metrics, and the check alone cost a "
        "provider lookup per request (~7% of the webhook intake's CPU).",
    )


class WorkerSettings(BaseModel):
    concurrency: int = Field(64, description="Runs a worker process executes at once (asyncio tasks).")
    claim_batch: int = Field(100, description="Most runs a worker claims in one database round trip.")
    lease_seconds: float = Field(30.0, description="How long a claimed run stays leased without a heartbeat.")
    heartbeat_seconds: float = Field(5.0, description="How often a worker renews its leases.")
    poll_seconds: float = Field(0.05, description="Idle poll interval when no work is queued.")
    claim_pace_seconds: float = Field(
        0.01,
        ge=0,
        description="After a claim that found fewer runs than it asked for, wait this long (or, when at least "
        "half the slots are busy, until a run finishes) before claiming again, so a trickle of work is claimed "
        "in batches, not a few runs per round trip. A claim that got all it asked for is followed at once. "
        "0 turns pacing off.",
    )
    merchant_concurrency: int = Field(
        64,
        description="Default most runs in flight per merchant across all workers. Claims are round-robin "
        "across merchants whatever this is; the cap stops one merchant from holding every slot.",
    )
    commit_concurrency: int = Field(
        3,
        description="Group commits a worker process keeps in flight at once (PostgreSQL; SQLite writes one "
        "at a time). More overlaps database round trips with execution; each still batches every op queued.",
    )
    postgres_settings: dict[str, str] = Field(
        default_factory=lambda: {"enable_bitmapscan": "off"},
        description="PostgreSQL settings for the connections of a `crossdock worker` process. The default "
        "turns bitmap scans off: the claim and the group commit read the partial indexes of queued and "
        "running runs, and only a plain index scan marks the entries of finished row versions dead as it "
        "passes them; bitmap scans left them for VACUUM, so each claim and commit revisited every run "
        "since the last VACUUM (docs/performance.md, profile 12). A JSON object of strings; `{}` keeps the "
        "server's settings (behind PgBouncer, which refuses startup parameters, use `{}` and ALTER ROLE).",
    )
    embedded_workers: int = Field(1, description="Worker loops `crossdock up` runs in-process.")
    case_sweep_seconds: float = Field(
        5.0, description="How often each runtime opens cases for failed runs, runs SLA escalation and notifies."
    )


class Settings(BaseSettings):
    """Crossdock configuration. Every field may be set as `CROSSDOCK_<NAME>` (nested: `CROSSDOCK_API__PORT`)."""

    model_config = SettingsConfigDict(env_prefix="CROSSDOCK_", env_nested_delimiter="__", extra="ignore")

    home: Path = Field(Path(".crossdock"), description="Folder for the embedded database, keys and logs.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL. Unset: SQLite in `home`. `postgresql://user@host/db` selects PostgreSQL.",
    )
    db_pool_size: int = Field(10, description="Connections kept per process (PostgreSQL).")
    db_echo: bool = Field(False, description="Log every SQL statement (debugging only).")
    master_key: SecretStr | None = Field(
        None, description="Fernet key(s), comma-separated, newest first, for secrets at rest. Never stored in the DB."
    )
    master_key_file: Path | None = Field(None, description="File holding the master key(s); default `home/master.key`.")
    log_level: str = Field("INFO", description="Root log level.")
    log_json: bool = Field(True, description="Structured JSON logs (one object per line) with the request id.")
    token_ttl_days: int = Field(90, description="Default lifetime of a new API token, in days.")
    api: ApiSettings = Field(default_factory=ApiSettings, description="HTTP API settings.")
    worker: WorkerSettings = Field(default_factory=WorkerSettings, description="Engine worker settings.")

    @cached_property
    def resolved_database_url(self) -> str:
        return normalize_database_url(self.database_url or f"sqlite:///{(self.home / 'crossdock.db').as_posix()}")

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def normalize_database_url(url: str) -> str:
    """Pick the async driver Crossdock uses for each database, whatever the user wrote."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("postgresql+psycopg://") or url.startswith("postgresql+psycopg2://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url
