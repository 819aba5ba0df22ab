"""Flow's Prometheus metrics, in a registry of their own (served at /flow/api/metrics).

A separate registry keeps Flow's series apart from jupyter_server's own /metrics and lets several Flow hosts live
in one process (tests) without duplicate-registration errors: metric objects are module-level, created once.
"""
from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "flow_http_requests_total", "HTTP requests to Flow's API.", ["method", "route", "status"], registry=REGISTRY
)
REQUEST_SECONDS = Histogram(
    "flow_http_request_duration_seconds", "Time to answer a Flow API request.", ["method", "route"],
    registry=REGISTRY, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
UPLOAD_BYTES = Counter("flow_upload_bytes_total", "Bytes received by resumable uploads.", registry=REGISTRY)
UPLOADS_COMPLETED = Counter("flow_uploads_completed_total", "Uploads that became data files.", registry=REGISTRY)
ACTIVE_UPLOADS = Gauge("flow_uploads_active", "Upload requests streaming right now.", registry=REGISTRY)
DOWNLOAD_BYTES = Counter("flow_download_bytes_total", "Bytes sent by file and zip downloads.", registry=REGISTRY)
SCHEDULER_COMMANDS = Counter(
    "flow_scheduler_commands_total", "Commands Flow ran against the batch scheduler (sbatch, squeue, scancel, …), by "
    "command and outcome: ok, failed (a non-zero exit that is an answer), unavailable (unreachable or timed out).",
    ["command", "outcome"], registry=REGISTRY,
)
SCHEDULER_REACHABLE = Gauge(
    "flow_scheduler_reachable", "1 while the last status query of a backend was answered, 0 while it is unreachable.",
    ["backend"], registry=REGISTRY,
)


class PoolCollector:
    """Connection-pool figures of every live Flow database, read at scrape time."""

    def __init__(self) -> None:
        self.engines: dict[str, Any] = {}

    def watch(self, name: str, engine: Any) -> None:
        self.engines[name] = engine

    def collect(self):
        checked_out = GaugeMetricFamily("flow_db_pool_checked_out", "Connections in use.", labels=["db"])
        size = GaugeMetricFamily("flow_db_pool_size", "Connections kept in the pool.", labels=["db"])
        for name, engine in list(self.engines.items()):
            pool = engine.pool
            if hasattr(pool, "checkedout"):
                checked_out.add_metric([name], pool.checkedout())
                size.add_metric([name], pool.size())
        yield checked_out
        yield size

    def describe(self):
        return []


POOLS = PoolCollector()
REGISTRY.register(POOLS)


def observe_request(method: str, route: str, status: int, started: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)
