"""Gatekeeper policy: ConstraintTemplates and Constraints evaluated with a real Rego engine.

Only :mod:`bot.domain.policy.rego` imports the engine (regopy).
"""

from __future__ import annotations

from bot.domain.policy.gatekeeper import (
    Constraint,
    PolicyResult,
    PolicySet,
    Template,
    build_inventory,
    evaluate,
    load_policy,
    matches,
    review_of,
)
from bot.domain.policy.rego import RegoError
from bot.domain.policy.suite import CaseResult, SuiteReport, verify_suites

__all__ = [
    "CaseResult",
    "Constraint",
    "PolicyResult",
    "PolicySet",
    "RegoError",
    "SuiteReport",
    "Template",
    "build_inventory",
    "evaluate",
    "load_policy",
    "matches",
    "review_of",
    "verify_suites",
]
