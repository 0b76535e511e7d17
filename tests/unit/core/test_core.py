"""Unit tests of core pieces: ids, cursors, scopes, settings."""

from __future__ import annotations

import os

import pytest

from crossdock.core import ids
from crossdock.core.errors import CrossdockError
from crossdock.core.ids import new_id, new_ulid
from crossdock.core.pagination import decode_cursor, encode_cursor
from crossdock.core.settings import Settings, normalize_database_url
from crossdock.core.tenancy import Scope


def test_ids_are_prefixed_unique_and_time_ordered() -> None:
    ids = [new_id("run") for _ in range(2000)]
    assert len(set(ids)) == 2000
    assert all(i.startswith("run_") and len(i) == 30 for i in ids)
    # Same-millisecond ids are random in their tail, but ids from later milliseconds sort later.
    assert sorted(ids)[0][:14] == ids[0][:14]


def test_ulid_layout_matches_the_crockford_encoding_of_time_and_random_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_pool", ids._RandomPool())
    monkeypatch.setattr(ids.os, "urandom", lambda n: bytes(range(256)) * (n // 256 + 1))
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_700_000_000_123 * 1_000_000)
    value = new_ulid()
    # The reference encoding: 48-bit milliseconds and 80-bit random tail, each as one base-32 number.
    expected = ids._b32(1_700_000_000_123, 10) + ids._b32(int.from_bytes(bytes(range(10)), "big"), 16)
    assert value == expected
    assert new_ulid()[10:] == ids._b32(int.from_bytes(bytes(range(10, 20)), "big"), 16)  # the next slice


def test_random_pool_refills_across_its_boundary_and_never_repeats_a_slice() -> None:
    pool = ids._RandomPool()
    slices = [pool.take(10) for _ in range(2 * ids._POOL_BYTES // 10 + 3)]  # crosses two refills
    assert all(len(s) == 10 for s in slices)
    assert len(set(slices)) == len(slices)
    assert len(pool.take(ids._POOL_BYTES + 5)) == ids._POOL_BYTES + 5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_reuse_the_parents_random_bytes() -> None:
    ids.random_bytes(1)  # the parent's buffer now holds unused bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id's random tail, then leave without cleanup
        try:
            os.close(read)
            os.write(write, new_ulid()[10:].encode())
        finally:
            os._exit(0)  # never fall back into pytest in the child
    os.close(write)
    child_tail = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child_tail) == 16
    assert new_ulid()[10:] != child_tail  # without the at-fork reset both took the same next slice


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


def test_metric_children_are_remembered_and_count_like_labels() -> None:
    from crossdock.core.metrics import Metrics

    metrics = Metrics()
    first = metrics.child(metrics.runs_finished, "succeeded")
    assert metrics.child(metrics.runs_finished, "succeeded") is first
    first.inc()
    metrics.child(metrics.runs_finished, "succeeded").inc()
    metrics.runs_finished.labels(status="failed").inc()
    assert metrics.registry.get_sample_value("crossdock_runs_finished_total", {"status": "succeeded"}) == 2
    assert metrics.registry.get_sample_value("crossdock_runs_finished_total", {"status": "failed"}) == 1
    metrics.child(metrics.step_latency, "map").observe(0.002)
    assert metrics.registry.get_sample_value("crossdock_step_seconds_count", {"type": "map"}) == 1
