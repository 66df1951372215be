"""The fleet compliance dashboard's model (pure): facts per cluster and environment in, rows out.

See :mod:`bot.domain.fleet.model` (facts, rows, counts, "needs action" ordering, JSON) and
:mod:`bot.domain.fleet.exports` (PolicyReports and Prometheus samples).
"""

from bot.domain.fleet.model import (
    Addon,
    ClusterFacts,
    EnvFacts,
    FleetFacts,
    MergedPR,
    SecretFinding,
    Violation,
    build_fleet,
    facts_from_json,
    facts_to_json,
)

__all__ = [
    "Addon",
    "ClusterFacts",
    "EnvFacts",
    "FleetFacts",
    "MergedPR",
    "SecretFinding",
    "Violation",
    "build_fleet",
    "facts_from_json",
    "facts_to_json",
]
