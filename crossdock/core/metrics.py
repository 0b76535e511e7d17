"""Prometheus metrics, one registry per process container (no module-level global state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

M = TypeVar("M", Counter, Gauge, Histogram)


class Metrics:
    """The metrics every part of Crossdock reports; domains add theirs through `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self.http_requests = Counter(
            "crossdock_http_requests_total",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "crossdock_http_request_seconds",
            "HTTP request latency.",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.queue_depth = Gauge(
            "crossdock_queue_depth", "Runs waiting to be claimed, per merchant.", ["merchant"], registry=self.registry
        )
        self.step_latency = Histogram(
            "crossdock_step_seconds",
            "Step execution latency by step type.",
            ["type"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
        )
        self.step_retries = Counter(
            "crossdock_step_retries_total",
            "Step attempts that failed and were retried.",
            ["type"],
            registry=self.registry,
        )
        self.lease_expirations = Counter(
            "crossdock_lease_expirations_total",
            "Run leases the reaper took back from dead workers.",
            registry=self.registry,
        )
        self.rate_budget_waits = Counter(
            "crossdock_rate_budget_waits_total",
            "Times a step waited for a connected account's rate budget.",
            ["account"],
            registry=self.registry,
        )
        self.runs_finished = Counter(
            "crossdock_runs_finished_total", "Runs reaching a final state.", ["status"], registry=self.registry
        )
        self.group_commit_seconds = Histogram(
            "crossdock_group_commit_seconds",
            "Duration of one group commit: `intake` (webhooks' runs) or `journal` (a worker's step journal).",
            ["kind"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
        )
        self.group_commit_size = Histogram(
            "crossdock_group_commit_size",
            "Operations written by one group commit (webhooks for `intake`, run ops for `journal`).",
            ["kind"],
            registry=self.registry,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
        )

    def child(self, metric: M, *values: str) -> M:
        """`metric.labels(*values)`, remembered: `labels` converts, checks and locks on every call,
        which adds up on per-request and per-step paths. Not for metrics whose children are removed
        or cleared (the per-merchant queue depth gauge)."""
        key = (metric, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found


def group_commit_observer(metrics: Metrics | None, kind: str) -> Callable[[int, float], None]:
    """Record one group commit's size and duration under `kind` (a no-op without metrics)."""
    if metrics is None:
        return lambda _size, _seconds: None
    size, seconds = metrics.group_commit_size.labels(kind), metrics.group_commit_seconds.labels(kind)

    def observe(n: int, elapsed: float) -> None:
        size.observe(n)
        seconds.observe(elapsed)

    return observe
