"""Check-run summaries compared with golden markdown files (``UPDATE_GOLDEN=1`` rewrites them)."""

from __future__ import annotations

import os

from bot.domain.governance import signatures as sig
from bot.domain.governance.approvals import ApprovalFacts, Review, approvals_summary, evaluate
from bot.domain.governance.codeowners import parse_codeowners
from tests.conftest import FIXTURES

GOLDEN = FIXTURES / "governance" / "golden"
HEAD, TREE, OLD = "a1" * 20, "b2" * 20, "c3" * 20


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


def test_approvals_summary_golden() -> None:
    config = {
        "approvals": {
            "rules": [
                {
                    "name": "prod platform",
                    "paths": ["clusters/prod/**"],
                    "require": {"teams": ["acme/platform-team"]},
                },
                {"name": "two reviewers", "paths": ["clusters/**"], "require": {"count": 2}},
                {"name": "policy", "paths": ["policies/**"], "require": {"users": ["sec-lead"]}},
            ]
        }
    }
    facts = ApprovalFacts(
        author="dev",
        head_sha=HEAD,
        head_tree=TREE,
        base_ref="main",
        changed_paths=(
            "clusters/prod/eu-1/cluster.yaml",
            "clusters/prod/eu-1/nodepools.yaml",
            "policies/p.rego",
        ),
        reviews=(
            Review("pat", "APPROVED", OLD),
            Review("rita", "APPROVED", HEAD),
            Review("sec-lead", "CHANGES_REQUESTED", HEAD),
        ),
        trees={HEAD: TREE, OLD: "d4" * 20},
        team_members={"acme/platform-team": frozenset({"pat"})},
        permissions={"pat": "write", "rita": "maintain", "sec-lead": "admin"},
        codeowners=parse_codeowners("/clusters/prod/ @acme/prod-owners\n"),
    )
    title, text = approvals_summary(evaluate(facts, config))
    check_golden("approvals_summary.md", f"# {title}\n\n{text}\n")


def test_signatures_summary_golden() -> None:
    def verdict(
        n: int, status: str, message: str, hint: str = "", required: bool = True
    ) -> sig.CommitVerdict:
        return sig.CommitVerdict(
            f"{n:x}" * 40,
            f"commit {n}",
            "dev@acme.io",
            "dev@acme.io",
            "ssh",
            status,
            required,
            "",
            message,
            hint,
        )

    verdicts = [
        verdict(1, sig.VERIFIED, "good SSH signature by dev@acme.io (SHA256:abc)"),
        verdict(2, sig.UNSIGNED, "the commit is not signed", "Sign it: `git commit --amend -S --no-edit`."),
        verdict(
            3, sig.UNKNOWN_KEY, "signed with GPG key 0123ABCD, which is not in `.github/gpg-keys`", "Add it."
        ),
        verdict(4, sig.UNSIGNED, "the commit is not signed", "Sign it.", required=False),
    ]
    settings = sig.signature_settings({"signatures": {"required": True, "trust": "keys"}})
    title, text = sig.signatures_summary(verdicts, settings)
    check_golden("signatures_summary.md", f"# {title}\n\n{text}\n")
