"""examples/fleet and examples/requests: the example repository is valid and the demo requests behave.

Every check runs on a real git repository built from examples/fleet in a temporary directory,
with the real kustomize and the real validators. The EKS calendar date is pinned so the
findings do not change as versions leave support.
"""

from __future__ import annotations

import functools
import re
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.domain.config import parse_config
from bot.domain.governance.codeowners import parse_codeowners
from bot.domain.model import Severity
from bot.domain.validate import validate
from bot.git.signatures import signature_checker
from bot.prchecks.build import CheckResult, build_check
from tests.conftest import ROOT
from tests.render.conftest import KEY, commit, git
from tests.support.gitrepo import tree_repo

FLEET = ROOT / "examples" / "fleet"
REQUESTS = ROOT / "examples" / "requests"
TODAY = date(2026, 11, 21)
CHECKERS = [functools.partial(validate, today=TODAY), signature_checker]
GOOD_PATH = "clusters/dev/payments-dev-euw1/cluster.yaml"
BAD_PATH = "clusters/dev/analytics-dev-use1/cluster.yaml"


def fleet_config() -> dict[str, Any]:
    return parse_config((FLEET / ".github/gitops-bot.yml").read_text())


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example fleet as a git repository on ``main``."""
    return tree_repo(tmp_path_factory.mktemp("fleet") / "fleet", source=FLEET).path


def check_branch(repo: Path, name: str, files: dict[str, str | None]) -> CheckResult:
    git(repo, "checkout", "-q", "-b", name, "main")
    commit(repo, files, name)
    git(repo, "checkout", "-q", "main")
    return build_check(repo, "main", name, checkers=CHECKERS, secret_key=KEY)


def line_of(text: str, pattern: str) -> int:
    """Return the 1-based line of the first line matching ``pattern``."""
    for number, line in enumerate(text.splitlines(), 1):
        if re.search(pattern, line):
            return number
    raise AssertionError(f"{pattern!r} not found")


# ------------------------------------------------------------------ configuration


def test_config_has_every_section_and_matches_the_registry() -> None:
    config = fleet_config()
    assert set(config) >= {
        "clusters",
        "render",
        "cluster_requests",
        "fleet",
        "eks",
        "secrets",
        "policy",
        "signatures",
        "approvals",
        "environments",
        "promotion",
        "commands",
    }
    accounts = {c["env"]: c["labels"]["account"] for c in config["clusters"]}
    fleet_accounts = {env: v["account_id"] for env, v in config["fleet"]["environments"].items()}
    assert fleet_accounts == accounts
    assert [(e["name"], e["branch"]) for e in config["environments"]] == [
        ("dev", "env/dev"),
        ("staging", "env/staging"),
        ("prod", "env/prod"),
    ]
    rules = {r["name"] for r in config["approvals"]["rules"]}
    for env in config["environments"]:
        assert set(env["gates"].get("approvals", [])) <= rules
    assert config["cluster_requests"]["kinds"][0]["kind"] == "EKSCluster"
    for folder in config["policy"]["paths"]:
        assert (FLEET / folder).is_dir()


def test_approval_teams_own_their_paths_in_codeowners() -> None:
    config = fleet_config()
    owners = parse_codeowners((FLEET / ".github/CODEOWNERS").read_text())
    (prod_rule,) = [r for r in config["approvals"]["rules"] if r["name"] == "prod-owners"]
    prod_owners = {t.lstrip("@") for t in prod_rule["require"]["teams"]}
    matched = owners.owners_for("clusters/prod/prod-use1/cluster.yaml")
    assert prod_owners <= {o.lstrip("@") for o in matched}


def test_every_cluster_folder_is_in_the_registry() -> None:
    config = fleet_config()
    registered = {c["path"] for c in config["clusters"]}
    on_disk = {str(p.parent.relative_to(FLEET)) for p in FLEET.glob("clusters/*/*/flux")}
    assert on_disk == registered
    for request in FLEET.glob("clusters/*/*/cluster.yaml"):
        assert str(request.parent.relative_to(FLEET)) in registered


# ------------------------------------------------------------------ the fleet passes its own checks


def test_the_whole_fleet_passes_its_own_checks(tmp_path: Path) -> None:
    """Base holds only the config and the policy; head adds every file: nothing is an error."""
    path = tmp_path / "fleet"
    (path / "common").mkdir(parents=True)
    shutil.copytree(FLEET / ".github", path / ".github")
    shutil.copytree(FLEET / "common/policies", path / "common/policies")
    tree_repo(path)
    git(path, "checkout", "-q", "-b", "everything")
    shutil.copytree(FLEET, path, dirs_exist_ok=True)
    commit(path, {}, "everything")
    result = build_check(path, "main", "everything", checkers=CHECKERS[:1], secret_key=KEY)
    problems = [f for f in result.report.findings if f.severity is Severity.ERROR]
    assert problems == []
    # Only the IAM Roles of the kro graph have no CRD to check them against; the add-on charts come
    # from Helm repositories, so they are not rendered (a notice each).
    assert {(f.rule, f.path) for f in result.report.findings} == {
        ("schema.unknown-kind", "platform/kro/eks-cluster-rgd.yaml"),
        ("render.helm", "common/addons/aws-load-balancer-controller.yaml"),
        ("render.helm", "common/addons/cert-manager.yaml"),
        ("render.helm", "common/addons/external-secrets.yaml"),
    }
    assert {c.kind for c in result.report.changes} >= {"EKSCluster", "ExternalSecret", "HelmRelease"}


def test_a_no_op_change_has_no_findings(repo: Path) -> None:
    path = "clusters/dev/dev-use1/cluster.yaml"
    text = (FLEET / path).read_text().replace("team: platform\nspec:", "team: platform  # owners\nspec:")
    result = check_branch(repo, "no-op", {path: text})
    assert result.changed_paths == [path]
    assert result.report.findings == [] and result.report.changes == []


def test_an_unsigned_prod_change_is_the_only_finding(repo: Path) -> None:
    """signatures.overrides requires signed commits under clusters/prod/** even though required is false."""
    path = "clusters/prod/prod-use1/cluster.yaml"
    text = (FLEET / path).read_text().replace("team: platform\nspec:", "team: platform  # owners\nspec:")
    result = check_branch(repo, "no-op-prod", {path: text})
    assert result.report.changes == []
    assert [(f.rule, f.severity) for f in result.report.findings] == [("signature", Severity.ERROR)]
    assert "not signed" in result.report.findings[0].message


# ------------------------------------------------------------------ examples/requests


def test_good_request_passes_and_shows_the_new_cluster(repo: Path) -> None:
    text = (REQUESTS / "good-dev-cluster.yaml").read_text()
    result = check_branch(repo, "good", {GOOD_PATH: text})
    assert not result.report.blocking
    assert result.report.findings == []
    added = {(c.target, c.kind, c.name) for c in result.report.changes if c.action == "added"}
    assert added == {
        ("applicationset/cluster-requests", "Application", "cluster-payments-dev-euw1"),
        ("argocd/cluster-payments-dev-euw1", "EKSCluster", "payments-dev-euw1"),
    }
    (cluster,) = [c for c in result.report.changes if c.kind == "EKSCluster"]
    assert cluster.cluster == "hub-use1" and "+    cost-center: cc-4102" in cluster.diff
    markdown = "\n".join(result.comment_parts())
    assert "**2 objects change on 1 cluster (2 added)**" in markdown


def test_bad_request_blocks_on_the_right_lines(repo: Path) -> None:
    text = (REQUESTS / "bad-cluster.yaml").read_text()
    result = check_branch(repo, "bad", {BAD_PATH: text})
    assert result.report.blocking
    found = {(f.rule, f.path, f.line) for f in result.report.findings if f.severity is Severity.ERROR}
    assert found == {
        ("eks.version", BAD_PATH, line_of(text, r'version: "1\.29"')),
        ("fleet.instance-type", BAD_PATH, line_of(text, r"- c7i\.8xlarge")),
        ("fleet.scaling", BAD_PATH, line_of(text, r"max: 50")),
        ("fleet.tags", BAD_PATH, line_of(text, r"^  tags:")),
        ("secrets.plaintext", BAD_PATH, line_of(text, r"^stringData:")),
    }
    by_rule = {f.rule: f for f in result.report.findings}
    assert "1.29 is out of EKS support" in by_rule["eks.version"].message
    assert "1.35" in by_rule["eks.version"].hint
    assert "cap of 20 nodes" in by_rule["fleet.scaling"].message
    assert "environment, cost-center" in by_rule["fleet.tags"].message
    assert "password" in by_rule["secrets.plaintext"].message
    markdown = "\n".join(result.comment_parts())
    assert "hunter2" not in markdown and "hunter2" not in repr(result.report.to_json())
    assert "| ❌ | `fleet.instance-type` |" in markdown


def test_request_breaking_the_rgd_schema_is_a_schema_error(repo: Path) -> None:
    """The EKSCluster SimpleSchema (platform/kro) bounds node counts and rejects unknown fields."""
    text = (REQUESTS / "good-dev-cluster.yaml").read_text()
    text = text.replace("max: 6", "max: 500").replace("desired: 2", "desiredSize: 2")
    result = check_branch(repo, "schema", {GOOD_PATH: text})
    schema = [f for f in result.report.findings if f.rule == "schema"]
    assert {f.line for f in schema} == {line_of(text, "max: 500"), line_of(text, "desiredSize: 2")}
    assert any("did you mean 'desired'?" in f.message for f in schema)
    assert all("platform/kro/eks-cluster-rgd.yaml" in f.hint for f in schema)
    assert result.report.blocking
