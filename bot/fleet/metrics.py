"""Prometheus gauges of the fleet (``/metrics``): a collector over the last computed fleet JSON."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.domain.fleet.exports import gauge_samples

HELP = {
    "gitops_bot_cluster_support_days": "Days until the version leaves EKS standard or extended support",
    "gitops_bot_cluster_policy_violations": "Gatekeeper violations on rendered objects, by severity",
    "gitops_bot_cluster_needs_action": "1 when the dashboard lists the cluster as needing action",
    "gitops_bot_env_pending_promotions": "Commits on the environment branch not yet in the next environment",
    "gitops_bot_fleet_clusters": "Clusters by EKS support state",
}


class FleetCollector(Collector):
    """Yields the fleet gauges of the last :meth:`update` (none before the first)."""

    def __init__(self) -> None:
        self._fleet: Mapping[str, Any] | None = None

    def update(self, fleet: Mapping[str, Any]) -> None:
        self._fleet = fleet

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self._fleet is None:
            return
        grouped: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
        for name, labels, value in gauge_samples(self._fleet):
            grouped[name].append((labels, value))
        for name, samples in grouped.items():
            keys = sorted({k for labels, _ in samples for k in labels})
            family = GaugeMetricFamily(name, HELP.get(name, name), labels=keys)
            for labels, value in samples:
                family.add_metric([labels.get(k, "") for k in keys], value)
            yield family
