"""Golden files for what people read: the promotion PR body, the conflict comment, the check summary.

Regenerate with ``UPDATE_GOLDEN=1 pytest tests/promotion/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.domain.config import parse_config
from bot.domain.promotion.environments import load_chain
from bot.domain.promotion.gates import ApprovalResult, GateFacts, GateState, HealthCheck, evaluate_gates
from bot.domain.promotion.plan import conflict_comment, next_history, pr_body, rollback_body

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
CONFIG = """
environments:
  - {name: dev, branch: env/dev, auto_merge: true, gates: {health: {contexts: [flux/dev]}, soak: 30m}}
  - name: staging
    branch: env/staging
    auto_merge: true
    gates: {health: {contexts: [flux/staging]}, soak: 1h}
  - name: prod
    branch: env/prod
    gates:
      approvals: [prod-owners]
      freeze: [{start: "2026-11-16", end: "2026-11-20", reason: "Re:Invent week"}]
"""


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} changed; review and regenerate with UPDATE_GOLDEN=1"


@pytest.fixture
def envs():  # type: ignore[no-untyped-def]
    return load_chain(parse_config(CONFIG))


def test_promotion_body_for_prod(envs) -> None:  # type: ignore[no-untyped-def]
    dev, staging, prod = envs.environments
    h1 = next_history(
        envs,
        dev,
        staging,
        merged_pr=123,
        merged_title="Add cluster team-a (eu-west-1)",
        merged_sha="4f2c9a1b7d3e5f60718293a4b5c6d7e8f9012345",
        previous=None,
        merged_at="2026-11-18T08:00:00Z",
    )
    h2 = next_history(
        envs,
        staging,
        prod,
        merged_pr=130,
        merged_title="Promote #123 to staging: x",
        merged_sha="9a8b7c6d5e4f30211223344556677889900aabbc",
        previous=h1,
        merged_at="2026-11-18T09:00:00Z",
    )
    facts = GateFacts(
        now=NOW,
        health=(
            HealthCheck("status", "flux/staging", GateState.PASS, "Applied", NOW - timedelta(minutes=25)),
        ),
        merged_at=NOW - timedelta(hours=1),
        approvals=(ApprovalResult("prod-owners", False, "0 of 1 approval(s) from people with write access"),),
    )
    report = evaluate_gates(staging, prod, facts)
    diff = (
        "<details><summary><b>team-a</b> · prod · 1 object added</summary>\n\n"
        "```diff\n+apiVersion: eks.services.k8s.aws/v1alpha1\n+kind: Cluster\n"
        "+metadata:\n+  name: team-a\n```\n</details>"
    )
    body = pr_body(
        h2, repo="org/fleet", diff_markdown=diff, checklist=report.task_list(), auto_merge=prod.auto_merge
    )
    _check("promotion_body.md", body)
    _check("check_summary.md", report.summary_line() + "\n\n" + report.checklist() + "\n")


def test_conflict_and_rollback_texts(envs) -> None:  # type: ignore[no-untyped-def]
    staging = envs.environments[1]
    text = conflict_comment(
        env=staging,
        onto_branch="env/staging",
        source_pr=123,
        source_sha="4f2c9a1b7d3e5f60718293a4b5c6d7e8f9012345",
        paths=("clusters/team-a/cluster.yaml", "clusters/team-a/nodegroups.yaml"),
        strategy="cherry-pick",
    )
    _check("conflict_comment.md", text + "\n")
    body = rollback_body(
        repo="org/fleet",
        env="staging",
        pr_number=130,
        sha="9a8b7c6d5e4f30211223344556677889900aabbc",
        reason="health of `staging` turned red: `flux/staging`: HelmRelease failed",
    )
    _check("rollback_body.md", body + "\n")
