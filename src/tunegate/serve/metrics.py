"""Prometheus metrics of one server, on a registry of its own (two apps in one process never collide).

Names follow Prometheus conventions (`_total` counters, `_seconds` histograms). The monitor reads the
same facts from `RequestEvent`s instead of scraping, so these exist for the operator's Prometheus.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tunegate_requests_total",
            "Requests answered, by endpoint, model version, route and status.",
            ["endpoint", "model", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "tunegate_request_latency_seconds",
            "Time from request to full response.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.rejected = Counter(
            "tunegate_rejected_total",
            "Requests refused before any model ran, by reason.",
            ["reason"],
            registry=r,
        )
        self.inflight = Gauge("tunegate_inflight_requests", "Requests in progress.", registry=r)
        self.batch_size = Histogram(
            "tunegate_batch_size",
            "Texts per micro-batch forward.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.confidence = Histogram(
            "tunegate_confidence",
            "Top-class probability of each classified text.",
            ["model"],
            buckets=tuple(i / 20 for i in range(1, 21)),
            registry=r,
        )
        self.escalations = Counter(
            "tunegate_escalations_total",
            "Outputs flagged for human review.",
            ["model", "endpoint"],
            registry=r,
        )
        self.feedback = Counter(
            "tunegate_feedback_total", "Feedback received, by verdict.", ["verdict"], registry=r
        )
        self.served_version = Gauge(
            "tunegate_served_version",
            "Version number served, by model and route.",
            ["model", "route"],
            registry=r,
        )
