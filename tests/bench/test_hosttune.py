"""`bench/run.py --tune-db-host`: settings applied for the run and put back afterwards."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from harness import hosttune, report  # noqa: E402
from harness.systems import pg_available  # noqa: E402


def _vm(tmp_path: Path, bytes_: str, ratio: str) -> Path:
    (tmp_path / "dirty_background_bytes").write_text(bytes_ + "\n")
    (tmp_path / "dirty_background_ratio").write_text(ratio + "\n")
    return tmp_path


def test_writeback_tuned_then_the_ratio_in_force_restored(tmp_path: Path) -> None:
    vm = _vm(tmp_path, "0", "10")
    with hosttune.HostTuning(proc_sys_vm=vm, postgres=False) as tuned:
        assert (vm / "dirty_background_bytes").read_text() == str(32 * 2**20)
        assert tuned.applied == ["vm.dirty_background_bytes=33554432 (was bytes 0, ratio 10)"]
        (vm / "dirty_background_ratio").write_text("0")  # as the kernel does on a write of the other
    # the harness restores the one of the pair that was in force
    assert (vm / "dirty_background_ratio").read_text() == "10"


def test_a_byte_limit_in_force_is_restored_even_when_the_run_fails(tmp_path: Path) -> None:
    vm = _vm(tmp_path, "8388608", "0")
    with pytest.raises(RuntimeError, match="run failed"), hosttune.HostTuning(proc_sys_vm=vm, postgres=False):
        assert (vm / "dirty_background_bytes").read_text() == str(32 * 2**20)
        raise RuntimeError("run failed")
    assert (vm / "dirty_background_bytes").read_text() == "8388608"


def test_not_permitted_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(hosttune.TuningError, match="run as root"):
        with hosttune.HostTuning(proc_sys_vm=tmp_path / "missing", postgres=False):
            pass


def _show() -> str:
    return hosttune._psql("SHOW min_wal_size")


def _auto_conf_value() -> str:
    return hosttune._psql(
        "SELECT COALESCE(max(setting || COALESCE(unit, '')), '') FROM pg_settings "
        "WHERE name = 'min_wal_size' AND sourcefile LIKE '%postgresql.auto.conf'"
    )


@pytest.mark.skipif(pg_available() is not None, reason="PostgreSQL not reachable")
def test_min_wal_size_applied_for_the_run_then_put_back(tmp_path: Path) -> None:
    vm = _vm(tmp_path, "0", "10")
    before, before_auto = _show(), _auto_conf_value()
    try:
        # none set with ALTER SYSTEM; one an operator set; one an operator set and did not reload yet
        for operator_value, reload in (("", False), ("96MB", True), ("112MB", False)):
            if operator_value:
                hosttune._psql(f"ALTER SYSTEM SET min_wal_size = '{operator_value}'")
                if reload:
                    _reload()
            expected = operator_value or _show()  # the run's own reloads apply an operator's pending value
            with hosttune.HostTuning(proc_sys_vm=vm) as tuned:
                _wait_for("2GB")
                assert any("min_wal_size=2GB" in a for a in tuned.applied)
            _wait_for(expected)
            assert _auto_conf_value() == operator_value  # put back, or the override removed
    finally:
        hosttune._psql(
            f"ALTER SYSTEM SET min_wal_size = '{before_auto}'" if before_auto else "ALTER SYSTEM RESET min_wal_size"
        )
        _reload()
        _wait_for(before)


def _reload() -> None:
    hosttune._psql("SELECT pg_reload_conf()")


def _wait_for(value: str) -> None:
    """The reload is asynchronous: wait until new sessions see `value`."""
    deadline = time.monotonic() + 5
    while _show() != value:
        assert time.monotonic() < deadline, f"min_wal_size is {_show()}, expected {value}"
        time.sleep(0.05)


def test_report_says_whether_the_host_was_tuned() -> None:
    doc = {
        "systems": {},
        "machine": {"cores": 2},
        "date": "2026-12-06T05:00:00+00:00",
        "config": {},
        "reps": 1,
        "targets": [],
    }
    assert "no `--tune-db-host`" in report.markdown(doc)
    doc["host_tuning"] = ["vm.dirty_background_bytes=33554432 (was bytes 0, ratio 10)"]
    text = report.markdown(doc)
    assert "Database host tuned for this run" in text and "33554432" in text
