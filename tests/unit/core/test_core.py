"""Unit tests of core pieces: ids, cursors, scopes, settings."""

from __future__ import annotations

import pytest

from crossdock.core.errors import CrossdockError
from crossdock.core.ids import new_id
from crossdock.core.pagination import decode_cursor, encode_cursor
from crossdock.core.settings import Settings, normalize_database_url
from crossdock.core.tenancy import Scope


def test_ids_are_prefixed_unique_and_time_ordered() -> None:
    ids = [new_id("run") for _ in range(2000)]
    assert len(set(ids)) == 2000
    assert all(i.startswith("run_") and len(i) == 30 for i in ids)
    # Same-millisecond ids are random in their tail, but ids from later milliseconds sort later.
    assert sorted(ids)[0][:14] == ids[0][:14]


def test_cursor_round_trip_and_rejects_garbage() -> None:
    ident = new_id("usr")
    assert decode_cursor(encode_cursor(ident)) == ident
    for bad in ("%%%", "aGVsbG8", ""):
        with pytest.raises(CrossdockError) as err:
            decode_cursor(bad)
        assert err.value.code == "bad_request"


def test_scope_allows_only_its_subtrees() -> None:
    partner = Scope.of_partner("p1")
    merchant = Scope.of_merchant("m1")
    assert partner.allows("p1", "m9") and partner.allows("p1", None)
    assert not partner.allows("p2", "m1x")
    assert merchant.allows("p1", "m1") and not merchant.allows("p1", None) and not merchant.allows("p1", "m2")
    assert Scope.everything().allows(None, None)
    assert not Scope.nothing().allows("p1", "m1") and Scope.nothing().empty
    both = partner.union(merchant)
    assert both.allows("p2", "m1") and both.allows("p1", None)


def test_settings_default_to_embedded_sqlite_and_normalize_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROSSDOCK_DATABASE_URL", raising=False)
    s = Settings()
    assert s.resolved_database_url == "sqlite+aiosqlite:///.crossdock/crossdock.db"
    assert s.is_sqlite and s.api.port == 8700
    monkeypatch.setenv("CROSSDOCK_DATABASE_URL", "postgresql://u@db:5432/crossdock")
    monkeypatch.setenv("CROSSDOCK_API__PORT", "9000")
    s = Settings()
    assert s.resolved_database_url == "postgresql+asyncpg://u@db:5432/crossdock"
    assert s.api.port == 9000 and not s.is_sqlite
    assert normalize_database_url("postgres://x/y") == "postgresql+asyncpg://x/y"


def test_every_setting_is_documented() -> None:
    def undocumented(model: type) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            if not field.description:
                missing.append(name)
        return missing

    from crossdock.core.settings import ApiSettings, WorkerSettings

    assert undocumented(Settings) == []
    assert undocumented(ApiSettings) == []
    assert undocumented(WorkerSettings) == []
