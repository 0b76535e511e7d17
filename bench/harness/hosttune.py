"""``--tune-db-host``: the database-host settings of docs/operations.md, for one benchmark run.

By default the benchmark runs on the machine's settings. With ``--tune-db-host`` it first applies
what docs/operations.md recommends for a PostgreSQL host under sustained intake, for every system of
the run alike, and restores the previous values afterwards (also when the run fails):

* ``vm.dirty_background_bytes = 32 MB``: the kernel writes dirty pages back as a trickle instead of
  a 100-200 MB burst every ~30 s, which every commit's WAL flush waits behind (needs root);
* PostgreSQL ``min_wal_size = 2GB``: WAL segments are kept for reuse at checkpoints instead of
  being created again (16 MB of zeros written under the WAL write lock) while the intake runs
  (``ALTER SYSTEM`` and a reload: needs a superuser).

Neither touches durability: fsync and synchronous commit stay on. The report says the run was tuned.
`bench/run.py` turns SIGTERM into an exit while tuned, so a stopped run restores them too (SIGKILL
cannot be caught: then put them back by hand; the run's first line prints the previous values).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .systems import psql

DIRTY_BACKGROUND_BYTES = 32 * 2**20
MIN_WAL_SIZE = "2GB"


class TuningError(RuntimeError):
    """A setting could not be applied (not root, not a superuser, ...)."""


def _psql(sql: str) -> str:
    try:
        return psql(sql)
    except subprocess.CalledProcessError as exc:
        raise TuningError(f"psql: {(exc.stderr or '').strip()}") from exc


@dataclass
class HostTuning:
    """Apply with ``with HostTuning(): ...``; `applied` lists what was changed (for the report)."""

    proc_sys_vm: Path = Path("/proc/sys/vm")
    postgres: bool = True
    applied: list[str] = field(default_factory=list)
    _restore: list[tuple[str, str]] = field(default_factory=list)  # (what, previous value)

    def __enter__(self) -> HostTuning:
        try:
            self._tune_writeback()
            if self.postgres:
                self._tune_wal()
        except BaseException:
            self.restore()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def _tune_writeback(self) -> None:
        vm = self.proc_sys_vm
        try:
            old_bytes = (vm / "dirty_background_bytes").read_text().strip()
            old_ratio = (vm / "dirty_background_ratio").read_text().strip()
        except OSError as exc:
            raise TuningError(f"cannot set vm.dirty_background_bytes (run as root): {exc}") from exc
        # Writing one of the pair zeroes the other: restore whichever was in force. The restore is
        # recorded before the change, so a failure or an interrupt half-way still puts it back.
        if old_bytes != "0":
            self._restore.append(("vm:dirty_background_bytes", old_bytes))
        else:
            self._restore.append(("vm:dirty_background_ratio", old_ratio))
        try:
            (vm / "dirty_background_bytes").write_text(str(DIRTY_BACKGROUND_BYTES))
        except OSError as exc:
            self._restore.pop()  # nothing was changed
            raise TuningError(f"cannot set vm.dirty_background_bytes (run as root): {exc}") from exc
        self.applied.append(
            f"vm.dirty_background_bytes={DIRTY_BACKGROUND_BYTES} (was bytes {old_bytes}, ratio {old_ratio})"
        )

    def _tune_wal(self) -> None:
        old = _psql("SELECT setting || COALESCE(unit, '') FROM pg_settings WHERE name = 'min_wal_size'")
        # What an earlier ALTER SYSTEM wrote, applied or not yet reloaded (pg_file_settings: superuser,
        # which ALTER SYSTEM needs anyway): put back at the end; without one the override is removed.
        operator = _psql(
            "SELECT setting FROM pg_file_settings WHERE name = 'min_wal_size' "
            "AND sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno DESC LIMIT 1"
        )
        self._restore.append(("pg:min_wal_size", operator))  # before the change: see _tune_writeback
        _psql(f"ALTER SYSTEM SET min_wal_size = '{MIN_WAL_SIZE}'")
        _psql("SELECT pg_reload_conf()")
        self.applied.append(f"PostgreSQL min_wal_size={MIN_WAL_SIZE} (was {old})")

    def restore(self) -> None:
        """Put every changed setting back (best effort: each is tried even if another fails)."""
        errors = []
        while self._restore:
            what, value = self._restore.pop()
            try:
                if what.startswith("vm:"):
                    (self.proc_sys_vm / what[3:]).write_text(value)
                else:
                    _psql(f"ALTER SYSTEM SET min_wal_size = '{value}'" if value else "ALTER SYSTEM RESET min_wal_size")
                    _psql("SELECT pg_reload_conf()")
            except (OSError, TuningError) as exc:
                errors.append(f"{what}: {exc}")
        if errors:
            raise TuningError("could not restore " + "; ".join(errors))
