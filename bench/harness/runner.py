"""Drives one system through one repetition and computes its figures.

Per run: start the system in a fresh workdir, wait until a probe webhook
reaches the ERP recorder, reset the recorder, then

1. closed loop at ``concurrency`` (32): ``warmup`` s unmeasured, then
   ``duration`` s measured -> throughput (orders first delivered to the ERP
   inside the window / window), CPU s per order (process-tree CPU in the
   window / those orders);
2. drain; then open loop at each ``open_fractions`` x that peak for
   ``open_duration`` s -> ack and end-to-end latency percentiles; drain;
3. correctness over everything sent: ``lost`` (acked 2xx, never delivered),
   ``duplicated`` (orders the ERP received under more than one
   Idempotency-Key), ``wrong`` (mapping mismatch / unknown order / rejected
   delivery), ``errors`` (webhooks not answered 2xx).

Peak RSS comes from the sampler over the whole run.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from dataclasses import asdict, dataclass, field

from . import iostats, loadgen, recorder
from .orders import PROBE_ID_MAX, SECRET, expected_totals, make_webhook
from .procstats import ProcSampler, cpu_seconds, steal_pct
from .report import percentile
from .systems import PEERS_DIR, RunContext, System, free_port, remove_tree

RUN_SPAN = 10_000_000  # order ids reserved per run


@dataclass
class BenchConfig:
    """Timing and load parameters (the defaults are the full benchmark)."""

    warmup: float = 3.0
    duration: float = 12.0
    open_duration: float = 8.0
    open_fractions: tuple[float, ...] = (0.5, 0.8)
    concurrency: int = 32
    max_backlog: int = 256
    drain_idle: float = 15.0  # give up draining after this long without progress
    drain_timeout: float = 120.0

    @classmethod
    def smoke(cls) -> BenchConfig:
        return cls(warmup=1.0, duration=5.0, open_duration=3.0, drain_idle=10.0)


@dataclass
class RunResult:
    """Figures of one system in one repetition."""

    system: str
    rep: int
    ok: bool = True
    error: str = ""
    startup_s: float = 0.0
    orders_per_s: float = 0.0
    cpu_s_per_order: float | None = None
    rss_mb: float = 0.0
    closed_ack_p50_ms: float | None = None
    closed_ack_p99_ms: float | None = None
    latency: dict = field(default_factory=dict)  # "50%" -> {rate, ack_p50_ms, ...}
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    replays: int = 0
    wrong: int = 0
    errors: int = 0
    # diagnostics for the closed-loop window: is the harness or the machine the limit?
    sut_cores: float | None = None  # system-under-test CPU / window
    harness_cpu_s_per_order: float | None = None  # load generator + recorder
    machine_busy_cores: float | None = None  # all processes on the machine
    steal_pct: float | None = None  # CPU the hypervisor withheld, % of the machine's cores


class Harness:
    """Owns the ERP recorder process; runs systems against it."""

    def __init__(self, cfg: BenchConfig, tag: str = "") -> None:
        self.cfg = cfg
        self.tag = tag  # prefixes run ids (work dirs, logs) so parallel harnesses don't collide
        self.port = free_port()
        self.proc, self.delivered = recorder.start_process(self.port)
        self.base = f"http://127.0.0.1:{self.port}"
        self.erp_url = self.base + recorder.ERP_PATH
        self.run_seq = 0
        self.probe_id = 1

    def close(self) -> None:
        self.proc.kill()
        self.proc.join(5)

    # -- recorder helpers ---------------------------------------------------------------
    def _get(self, path: str, method: str = "GET") -> dict:
        req = urllib.request.Request(self.base + path, method=method)
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict:
        return self._get("/stats")

    def dump(self) -> dict:
        return self._get("/dump")

    def reset(self) -> None:
        self._get("/reset", method="POST")

    # -- readiness ----------------------------------------------------------------------
    def _probe(self, url: str) -> bool:
        wh = make_webhook(self.probe_id)
        self.probe_id = self.probe_id % (PROBE_ID_MAX - 1) + 1
        req = urllib.request.Request(url, data=wh.body, headers=wh.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return 200 <= resp.status < 300
        except Exception:
            return False

    def wait_ready(self, system: System) -> None:
        deadline = time.monotonic() + system.start_timeout
        before = self.stats()["probes"]
        while time.monotonic() < deadline:
            if not system.alive():
                raise RuntimeError(f"{system.name} exited during start-up")
            if system.ready() and self._probe(system.webhook_url):
                end = min(deadline, time.monotonic() + 15)
                while time.monotonic() < end:
                    if self.stats()["probes"] > before:
                        return
                    time.sleep(0.1)
            time.sleep(0.5)
        raise RuntimeError(f"{system.name} not ready after {system.start_timeout:.0f}s")

    def drain(self, expected: int) -> None:
        """Wait until the recorder holds ``expected`` orders or progress stops."""
        start = last_change = time.monotonic()
        last = -1
        while True:
            n = self.stats()["orders"]
            now = time.monotonic()
            if n >= expected:
                return
            if n != last:
                last, last_change = n, now
            if now - last_change > self.cfg.drain_idle or now - start > self.cfg.drain_timeout:
                return
            time.sleep(0.1)

    # -- one run ------------------------------------------------------------------------
    def run(self, system: System, rep: int) -> RunResult:
        self.run_seq += 1
        id_base = PROBE_ID_MAX + self.run_seq * RUN_SPAN
        run_id = f"{self.tag}{system.name}-r{rep}"
        workdir = PEERS_DIR / "runs" / run_id
        remove_tree(workdir)
        workdir.mkdir(parents=True)
        log_path = PEERS_DIR / "logs" / f"{run_id}.log"
        with contextlib.suppress(FileNotFoundError):
            log_path.unlink()
        ctx = RunContext(self.erp_url, SECRET, free_port(), workdir, log_path, run_id)
        res = RunResult(system.name, rep)
        t0 = time.monotonic()
        try:
            system.start(ctx)
            self.wait_ready(system)
            res.startup_s = round(time.monotonic() - t0, 1)
            self.reset()
            with ProcSampler(system.pids(), system.cpu_comms) as sampler:
                self._measure(system, id_base, res, sampler)
            res.rss_mb = round(sampler.peak_rss / 2**20, 1)
        except Exception as exc:
            res.ok = False
            res.error = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                system.stop()
            finally:
                remove_tree(workdir)
        return res

    def _measure(self, system: System, id_base: int, res: RunResult, sampler: ProcSampler) -> None:
        cfg = self.cfg
        phases: list[loadgen.PhaseResult] = []
        rec_cpu0 = cpu_seconds([self.proc.pid])
        closed = loadgen.run_phase(
            loadgen.Phase(
                url=system.webhook_url,
                mode="closed",
                duration=cfg.duration,
                warmup=cfg.warmup,
                id_base=id_base,
                concurrency=cfg.concurrency,
                max_backlog=cfg.max_backlog,
            ),
            self.delivered,
        )
        rec_cpu = cpu_seconds([self.proc.pid]) - rec_cpu0
        phases.append(closed)
        acked = _acked(phases)
        self.drain(len(acked))
        records = self.dump()["records"]
        # every first delivery inside the window counts (late warm-up orders included)
        in_window = sum(1 for r in records.values() if closed.t_start_ns <= r[0] <= closed.t_end_ns)
        window_s = (closed.t_end_ns - closed.t_start_ns) / 1e9
        res.orders_per_s = round(in_window / window_s, 1)
        if in_window:
            cpu = sampler.cpu_between(closed.t_start_ns, closed.t_end_ns)
            res.cpu_s_per_order = round(cpu / in_window, 6)
            res.sut_cores = round(cpu / window_s, 2)
            busy = sampler.machine_between(closed.t_start_ns, closed.t_end_ns)
            res.machine_busy_cores = round(busy / window_s, 2)
            res.steal_pct = steal_pct(sampler.steal_between(closed.t_start_ns, closed.t_end_ns), window_s)
        if closed.rows:
            res.harness_cpu_s_per_order = round((closed.cpu_s + rec_cpu) / len(closed.rows), 6)
        acks = [(r[2] - r[1]) / 1e6 for r in closed.rows if not r[4] and 200 <= r[3] < 300]
        res.closed_ack_p50_ms = _r(percentile(acks, 50))
        res.closed_ack_p99_ms = _r(percentile(acks, 99))

        peak = max(res.orders_per_s, 1.0)
        for i, frac in enumerate(cfg.open_fractions, start=1):
            rate = max(1.0, round(frac * peak, 1))
            with iostats.IoSampler() as io:
                ph = loadgen.run_phase(
                    loadgen.Phase(
                        url=system.webhook_url,
                        mode="open",
                        duration=cfg.open_duration,
                        rate=rate,
                        id_base=id_base + i * loadgen.PHASE_SPAN,
                    ),
                )
            phases.append(ph)
            self.drain(len(_acked(phases)))
            records = self.dump()["records"]
            ok = [row for row in ph.rows if 200 <= row[3] < 300]
            ack = [(r[2] - r[1]) / 1e6 for r in ok]
            lag = [r[5] / 1e6 for r in ph.rows]
            e2e = [(records[str(o)][0] - s) / 1e6 for o, s, *_ in ph.rows if str(o) in records]
            res.latency[f"{round(frac * 100)}%"] = {
                "rate": rate,
                "ack_p50_ms": _r(percentile(ack, 50)),
                "ack_p99_ms": _r(percentile(ack, 99)),
                "e2e_p50_ms": _r(percentile(e2e, 50)),
                "e2e_p99_ms": _r(percentile(e2e, 99)),
                "errors": len(ph.rows) - len(ok),
                "send_lag_p99_ms": _r(percentile(lag, 99)),
                # slow-ack episodes and the disk writes beside them (`iostats`)
                "io": iostats.phase_io(ph.rows, io.samples, ph.t_start_ns, ph.t_end_ns),
            }

        dump = self.dump()
        records = dump["records"]
        acked = _acked(phases)
        sent = {row[0] for ph in phases for row in ph.rows}
        res.sent = len(sent)
        res.delivered = len(records)
        res.errors = sum(1 for ph in phases for row in ph.rows if not 200 <= row[3] < 300)
        res.lost = sum(1 for oid in acked if str(oid) not in records)
        res.duplicated = dump["duplicated"]
        res.replays = dump["replays"]
        wrong = dump["bad"]
        for ext, rec in records.items():
            oid = int(ext)
            if oid not in sent or (rec[2], rec[3]) != expected_totals(oid):
                wrong += 1
        res.wrong = wrong


def _acked(phases: list[loadgen.PhaseResult]) -> set[int]:
    return {row[0] for ph in phases for row in ph.rows if 200 <= row[3] < 300}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def result_dict(r: RunResult) -> dict:
    return asdict(r)
