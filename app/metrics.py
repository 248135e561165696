"""Prometheus metrics, one registry per application (no module-level state).

Workers report timings with each task's result; the server process records them, so the
counts are right with a process pool too.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .tasks import JobStatus, Status

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OPERATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _Live(Collector):
    """Values read when scraped: queue depth, worker restarts, jobs by status."""

    def __init__(self, queue_depth: Callable[[], int], restarts: Callable[[], int],
                 jobs_by_status: Callable[[], dict[str, int]]):
        self.queue_depth, self.restarts, self.jobs_by_status = queue_depth, restarts, jobs_by_status

    def collect(self) -> Iterable:
        yield GaugeMetricFamily("imgsrv_queue_depth", "Images submitted to the pool and not finished",
                                value=self.queue_depth())
        yield CounterMetricFamily("imgsrv_worker_restarts", "Workers replaced after a crash or time limit",
                                  value=self.restarts())
        jobs = GaugeMetricFamily("imgsrv_jobs", "Jobs by status", labels=["status"])
        counts = self.jobs_by_status()
        for status in JobStatus:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("imgsrv_http_requests", "HTTP requests by route, method, status and API key name",
                                ["route", "method", "status", "key"], registry=r)
        self.latency = Histogram("imgsrv_http_request_duration_seconds", "HTTP request latency by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.images = Counter("imgsrv_images", "Images finished, by status (ok, skipped, error)", ["status"],
                              registry=r)
        self.processed = Counter("imgsrv_images_processed", "Images processed successfully, by operation",
                                 ["operation"], registry=r)
        self.failed = Counter("imgsrv_images_failed", "Images that failed, by operation and error code",
                              ["operation", "code"], registry=r)
        self.op_seconds = Histogram("imgsrv_operation_duration_seconds",
                                    "Worker time per operation and stage (read, decode, encode, write)",
                                    ["operation"], buckets=OPERATION_BUCKETS, registry=r)

    def bind(self, queue_depth: Callable[[], int], restarts: Callable[[], int],
             jobs_by_status: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_Live(queue_depth, restarts, jobs_by_status))

    def observe_image(self, status: str, operations: Iterable[str], timings: dict[str, float],
                      error_code: str | None = None) -> None:
        """Record one image's outcome (called in the server process with the worker's report)."""
        self.images.labels(status).inc()
        ops = list(operations) or ["none"]
        if status == Status.OK:
            for op in ops:
                self.processed.labels(op).inc()
        elif status == Status.ERROR:
            for op in ops:
                self.failed.labels(op, error_code or "unknown").inc()
        for name, ms in timings.items():
            self.op_seconds.labels(name).observe(ms / 1000.0)

    def observe_request(self, route: str, method: str, status: int, seconds: float, key: str = "-") -> None:
        self.requests.labels(route, method, str(status), key).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
