"""Prometheus metrics of the service, one registry per application instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The service's counters and gauges, exposed at ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "gitops_bot_deliveries",
            "Webhook deliveries by event and outcome",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "gitops_bot_queue_depth", "Deliveries by store status", ["status"], registry=self.registry
        )
        self.processing_seconds = Histogram(
            "gitops_bot_processing_seconds",
            "Time from claim to completion of a delivery",
            ["event"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "gitops_bot_ack_seconds",
            "Time to acknowledge a webhook delivery",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        self.github_calls = Counter(
            "gitops_bot_github_api_calls",
            "GitHub REST calls by method and status",
            ["method", "status"],
            registry=self.registry,
        )
        self.rate_limit_remaining = Gauge(
            "gitops_bot_github_rate_limit_remaining",
            "The last x-ratelimit-remaining seen from GitHub",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """Return the metrics in Prometheus text format."""
        return generate_latest(self.registry)
