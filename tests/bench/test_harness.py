"""Fast tests of the benchmark harness itself (bench/harness): no node/n8n needed.

Covers webhook signing, the reference mapping (and its JavaScript port when
``node`` is on PATH), the recorder's dedup counting, percentile math, report
aggregation/targets, and one ~5 s end-to-end run against the ceiling that checks
the shape of ``latest.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import run as bench_run  # noqa: E402
from harness import orders, report  # noqa: E402
from harness.recorder import Recorder  # noqa: E402

SPEC_FIELDS = {
    "orders_per_s",
    "ack_p50_ms",
    "ack_p99_ms",
    "e2e_p50_ms",
    "e2e_p99_ms",
    "cpu_s_per_order",
    "rss_mb",
    "lost",
    "duplicated",
}


def test_generated_webhooks_verify_and_look_like_shopify() -> None:
    for oid in (1_000_001, 2_345_678, 99_999_999):
        wh = orders.make_webhook(oid)
        sig = wh.headers["X-Shopify-Hmac-Sha256"]
        assert orders.verify(wh.body, sig)
        assert not orders.verify(wh.body + b" ", sig)
        assert not orders.verify(wh.body, sig, secret="other")
        assert not orders.verify(wh.body, None)
        order = orjson.loads(wh.body)
        assert order["id"] == oid
        assert len(order["line_items"]) == 3
        assert 1800 < len(wh.body) < 2800
        assert wh.headers["X-Shopify-Topic"] == "orders/create"
    assert orders.make_webhook(1_000_001).body == orders.make_webhook(1_000_001).body


def test_reference_mapping_sums_lines_and_discount() -> None:
    order = orders.make_order(1_234_567)
    key, body = orders.map_order(order)
    assert key == "shopify-order-1234567"
    assert body["external_id"] == "1234567"
    subtotal = sum(orders.cents(li["price"]) * li["quantity"] for li in order["line_items"])
    discount = orders.cents(order["total_discounts"])
    assert orders.cents(body["subtotal"]) == subtotal
    assert orders.cents(body["discount"]) == discount
    assert orders.cents(body["total"]) == subtotal - discount == orders.cents(order["total_price"])
    assert [ln["line_total"] for ln in body["lines"]] == [
        orders.money(orders.cents(li["price"]) * li["quantity"]) for li in order["line_items"]
    ]
    assert orders.expected_totals(1_234_567) == (body["total"], body["discount"])


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_javascript_mapping_matches_python() -> None:
    ids = list(range(3_000_000, 3_000_040))
    script = (BENCH / "peers" / "mapping.js").read_text() + (
        "\nconst orders = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "\nprocess.stdout.write(JSON.stringify(orders.map(mapOrder)));"
    )
    out = subprocess.run(
        ["node", "-e", script],
        input=json.dumps([orders.make_order(i) for i in ids]),
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout
    for oid, js in zip(ids, json.loads(out), strict=True):
        key, body = orders.map_order(orders.make_order(oid))
        assert js == {"key": key, "body": body}


def _delivery(oid: int, key: str | None = None) -> bytes:
    _, body = orders.map_order(orders.make_order(oid))
    return orjson.dumps(body)


def test_recorder_dedup_counting() -> None:
    rec = Recorder()
    a, b = 2_000_001, 2_000_002
    assert rec.record("k-a", _delivery(a), 10)[0] == 201
    assert rec.record("k-a", _delivery(a), 20)[0] == 200  # replay, same key: deduplicated
    assert rec.record("k-a2", _delivery(a), 30)[0] == 201  # same order, new key: duplicate
    assert rec.record("k-b", _delivery(b), 40)[0] == 201
    assert rec.record("k-b", _delivery(a), 50)[0] == 409  # key reused for another order
    assert rec.record(None, _delivery(b), 60)[0] == 400  # no Idempotency-Key
    assert rec.record("x", b"not json", 70)[0] == 400
    assert rec.record(None, _delivery(7), 80)[0] == 201  # probe ids are ignored
    st = rec.stats()
    assert st == {"orders": 2, "duplicated": 1, "replays": 1, "bad": 3, "probes": 1}
    first_ns, deliveries, total, discount, keys = rec.records[str(a)]
    assert (first_ns, deliveries, keys) == (10, 4 - 1, 2)
    assert (total, discount) == orders.expected_totals(a)
    rec.reset()
    assert rec.stats()["orders"] == 0


def test_percentile_math() -> None:
    assert report.percentile([], 50) is None
    assert report.percentile([7], 99) == 7
    xs = list(range(1, 101))  # 1..100
    assert report.percentile(xs, 0) == 1
    assert report.percentile(xs, 100) == 100
    assert report.percentile(xs, 50) == pytest.approx(50.5)
    assert report.percentile(xs, 99) == pytest.approx(99.01)
    assert report.percentile([3, 1, 2], 50) == 2


def test_cpu_line_splits_busy_from_steal() -> None:
    from harness.procstats import CLK_TCK, ProcSampler, cpu_line_seconds, machine_seconds, steal_pct

    # user nice system idle iowait irq softirq steal guest guest_nice
    busy, steal = cpu_line_seconds("cpu  100 5 20 1000 7 3 2 50 0 0")
    assert busy == pytest.approx(130 / CLK_TCK)  # idle, iowait and steal are not busy
    assert steal == pytest.approx(50 / CLK_TCK)
    assert cpu_line_seconds("cpu  100 5 20 1000 7 3 2") == (pytest.approx(130 / CLK_TCK), 0.0)
    b0, s0 = machine_seconds()
    sum(range(200_000))  # keep a core busy for a moment
    b1, s1 = machine_seconds()
    assert b1 >= b0 > 0 and s1 >= s0 >= 0
    sampler = ProcSampler([])
    sampler.samples = [(0, 0.0, 0.0, 1.0), (1_000_000_000, 0.5, 1.5, 1.4)]
    assert sampler.steal_between(0, 500_000_000) == pytest.approx(0.2)  # interpolated
    assert sampler.machine_between(0, 1_000_000_000) == pytest.approx(1.5)
    assert steal_pct(0.2, 0.5) == round(100 * 0.2 / (0.5 * (os.cpu_count() or 1)), 1)


def _run(system: str, rep: int, thr: float, lost: int = 0) -> dict:
    lat = {"rate": thr * 0.8, "ack_p50_ms": 1.0 * rep, "ack_p99_ms": 9.0, "e2e_p50_ms": 2.0, "e2e_p99_ms": 20.0}
    return {
        "system": system,
        "rep": rep,
        "ok": True,
        "error": "",
        "orders_per_s": thr,
        "cpu_s_per_order": 0.001,
        "rss_mb": 50.0,
        "closed_ack_p50_ms": 1.0,
        "closed_ack_p99_ms": 2.0,
        "startup_s": 1.0,
        "latency": {"80%": lat},
        "sent": 100,
        "lost": lost,
        "duplicated": 0,
        "wrong": 0,
        "errors": 0,
        "replays": 0,
    }


def test_aggregate_medians_sums_and_targets() -> None:
    runs = [_run("celery", r, t, lost=1 if r == 2 else 0) for r, t in ((1, 400), (2, 380), (3, 420))]
    runs += [_run("n8n_sqlite", 1, 40)]
    row = report.aggregate(runs[:3])
    assert row["orders_per_s"] == 400
    assert row["ack_p50_ms"] == 2.0  # median of 1, 2, 3
    assert row["lost"] == 1  # summed over reps
    doc = report.build(runs, ["celery", "n8n_sqlite"], {}, 3, {})
    assert doc["reference"] is None
    statuses = {t["target"]: t["status"] for t in doc["targets"]}
    assert set(statuses.values()) == {"SKIP"}
    runs += [_run("crossdock_pg_1w", 1, 900)]
    doc = report.build(runs, ["crossdock_pg_1w", "celery", "n8n_sqlite"], {}, 1, {})
    assert doc["reference"] == "crossdock_pg_1w"
    statuses = {t["target"]: t["status"] for t in doc["targets"]}
    assert statuses["crossdock_pg_1w >= 10x n8n_sqlite (orders/s)"] == "PASS"
    assert statuses["crossdock_pg_1w >= 1x celery (orders/s)"] == "PASS"
    assert statuses["crossdock_pg_1w ack p99 < 25 ms at 80% of own peak"] == "PASS"
    assert "| crossdock_pg_1w | 900 | 1.00×" in report.markdown(doc)


def test_tiny_ceiling_run_report_shape(tmp_path: Path) -> None:
    from harness.peers import Ceiling
    from harness.runner import BenchConfig, Harness, result_dict

    cfg = BenchConfig(warmup=0.3, duration=1.0, open_duration=0.5, drain_idle=5.0)
    harness = Harness(cfg, tag="pytest-")
    try:
        res = harness.run(Ceiling(), 1)
    finally:
        harness.close()
    assert res.ok, res.error
    doc = report.build([result_dict(res)], ["ceiling"], {}, 1, {})
    pj, pm = report.write(doc, tmp_path)
    data = json.loads(pj.read_text())
    assert set(data) >= {"systems", "machine", "date"}
    row = data["systems"]["ceiling"]
    assert set(row) >= SPEC_FIELDS
    assert row["orders_per_s"] > 50
    assert row["lost"] == 0 and row["duplicated"] == 0 and row["wrong"] == 0
    assert row["ack_p99_ms"] is not None and row["e2e_p99_ms"] is not None
    assert row["cpu_s_per_order"] and row["rss_mb"] > 5
    assert data["reference"] == "ceiling"
    assert "| ceiling |" in pm.read_text()
    assert res.steal_pct is not None and 0 <= res.steal_pct <= 100
    assert row["steal_pct"] == res.steal_pct  # the median of one repetition
    doc["machine"]["steal_pct"] = 12.5
    assert "host steal 12.5% of CPU over the run" in report.markdown(doc)


def test_smoke_results_never_replace_the_full_runs(tmp_path: Path) -> None:
    """`make bench-smoke` writes smoke-latest.*; the full run's latest.* (quoted by the README) stay."""
    full = report.build([], ["ceiling"], {}, 3, {})
    report.write(full, tmp_path, bench_run.results_stem(False))
    before = (tmp_path / "latest.json").read_text()
    smoke = report.build([], ["ceiling"], {}, 1, {})
    smoke["smoke"] = True
    pj, pm = report.write(smoke, tmp_path, bench_run.results_stem(True))
    assert (pj.name, pm.name) == ("smoke-latest.json", "smoke-latest.md")
    assert (tmp_path / "latest.json").read_text() == before
    assert json.loads(pj.read_text())["smoke"] is True


def test_tuned_results_keep_their_name_and_header_when_re_rendered(tmp_path: Path) -> None:
    """A tuned run writes tuned-latest.*; `--report-only` re-renders it under that name, still tuned."""
    assert bench_run.results_stem(False, tuned=True) == "tuned-latest"
    doc = report.build([], ["ceiling"], {}, 1, {})
    doc["host_tuning"] = ["vm.dirty_background_bytes=33554432 (was bytes 0, ratio 10)"]
    pj, _ = report.write(doc, tmp_path / "in", bench_run.results_stem(False, tuned=True))
    out = tmp_path / "out"
    assert bench_run.main(["--report-only", str(pj), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["tuned-latest.json", "tuned-latest.md"]
    assert json.loads((out / "tuned-latest.json").read_text())["host_tuning"] == doc["host_tuning"]
    assert "no `--tune-db-host`" not in (out / "tuned-latest.md").read_text()
