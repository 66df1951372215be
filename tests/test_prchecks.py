"""The pull-request pipeline end to end in-process: real git, real kustomize, a stateful fake GitHub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.service.context import HandlerContext
from bot.service.dispatch import dispatch_isolated
from handlers import combined_router
from tests.support.github import FakeGitHub, make_event
from tests.support.gitrepo import GitRepo, tree_repo
from tests.support.repos import FakeRepoAccess

ROOT = Path(__file__).resolve().parent.parent
FLEET = ROOT / "examples" / "fleet"
ROUTER = combined_router(["pull_request"])

NEW_CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: pr-check-demo
  namespace: kube-system
data:
  greeting: hello
"""

PLAINTEXT_SECRET = """apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: kube-system
stringData:
  password: hunter2-never-shown
"""


def _git(repo: Path, *args: str) -> str:
    return GitRepo.open(repo).git(*args)


@pytest.fixture
def fleet_repo(tmp_path: Path) -> Path:
    return tree_repo(tmp_path / "fleet", source=FLEET).path


def _commit(repo: Path, branch: str, files: dict[str, str]) -> str:
    _git(repo, "checkout", "-q", "-b", branch, "main")
    sha = GitRepo.open(repo).commit(dict(files), branch)
    _git(repo, "checkout", "-q", "main")
    return sha


def _payload(repo: Path, head: str, number: int = 7) -> dict[str, Any]:
    base = _git(repo, "rev-parse", "main")
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "state": "open",
            "title": "demo",
            "user": {"login": "dev", "type": "User"},
            "head": {"sha": head, "ref": "change"},
            "base": {"sha": base, "ref": "main", "repo": {"full_name": "acme/fleet"}},
        },
        "repository": {"full_name": "acme/fleet"},
        "installation": {"id": 1},
    }


async def _deliver(gh: FakeGitHub, repo: Path, payload: dict[str, Any]) -> None:
    ctx = HandlerContext(repos=FakeRepoAccess(path=repo / ".git"), delivery_id="d1")
    failures = await dispatch_isolated(ROUTER, make_event("pull_request", payload), gh, ctx)
    assert failures == []


def _runs(gh: FakeGitHub) -> dict[str, dict[str, Any]]:
    return {run["name"]: run for run in gh.check_runs.values()}


async def test_a_change_gets_diff_validate_and_umbrella_checks_and_one_sticky_comment(
    fleet_repo: Path,
) -> None:
    head = _commit(fleet_repo, "change", {"common/addons/pr-check-demo.yaml": NEW_CONFIGMAP})
    kust = fleet_repo / "common/addons/kustomization.yaml"
    text = kust.read_text()
    assert "resources:" in text
    _git(fleet_repo, "checkout", "-q", "change")
    kust.write_text(text.replace("resources:\n", "resources:\n  - pr-check-demo.yaml\n", 1))
    _git(fleet_repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "add it")
    head = _git(fleet_repo, "rev-parse", "HEAD")
    _git(fleet_repo, "checkout", "-q", "main")
    gh = FakeGitHub()
    payload = _payload(fleet_repo, head)
    await _deliver(gh, fleet_repo, payload)
    await _deliver(gh, fleet_repo, payload)  # a retried delivery changes nothing
    runs = _runs(gh)
    assert set(runs) == {"gitops-bot", "gitops-bot/diff", "gitops-bot/validate"}
    # The validate run carries annotations (notices: the fleet's add-on charts come from Helm
    # repositories), and a run with annotations is written afresh, never updated (GitHub appends
    # annotations): the retry adds one validate run, nothing else.
    validate_runs = [r for r in gh.check_runs.values() if r["name"] == "gitops-bot/validate"]
    assert [r["output"]["annotations_count"] for r in validate_runs] == [3, 3]
    assert len(gh.check_runs) == 4
    assert all(r["head_sha"] == head for r in runs.values())
    assert runs["gitops-bot/validate"]["conclusion"] == "success"
    assert runs["gitops-bot"]["conclusion"] == "success"
    assert "pr-check-demo" in runs["gitops-bot/diff"]["output"]["text"]
    (comment,) = gh.comments.values()
    body = comment["body"]
    assert body.startswith("<!-- gitops-bot:sticky -->")
    assert "pr-check-demo" in body and "```diff" in body


async def test_a_plaintext_secret_blocks_with_an_annotation_and_never_shows_its_value(
    fleet_repo: Path,
) -> None:
    head = _commit(fleet_repo, "change", {"common/addons/db-secret.yaml": PLAINTEXT_SECRET})
    gh = FakeGitHub()
    await _deliver(gh, fleet_repo, _payload(fleet_repo, head))
    runs = _runs(gh)
    assert runs["gitops-bot/validate"]["conclusion"] == "failure"
    assert runs["gitops-bot"]["conclusion"] == "failure"
    annotations = [
        a for call in gh.calls if call.body for a in (call.body.get("output") or {}).get("annotations", [])
    ]
    assert any(
        a["path"] == "common/addons/db-secret.yaml" and a["annotation_level"] == "failure"
        for a in annotations
    )
    everything = repr([c.body for c in gh.calls]) + repr(list(gh.comments.values()))
    assert "hunter2-never-shown" not in everything


async def test_promotion_pr_bodies_get_the_rendered_diff(fleet_repo: Path) -> None:
    from bot.prchecks.publish import rendered_env_diff

    request = (ROOT / "examples" / "requests" / "good-dev-cluster.yaml").read_text()
    head = _commit(fleet_repo, "change", {"clusters/dev/payments-dev-euw1/cluster.yaml": request})
    base = _git(fleet_repo, "rev-parse", "main")
    markdown = await rendered_env_diff(fleet_repo / ".git", base, head, "staging")
    assert "cluster-payments-dev-euw1" in markdown and "```diff" in markdown
    assert "<!-- gitops-bot:" not in markdown


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("base_files", "head_files", "changed", "same"),
    [
        ({"a/x.yaml": "kind: Service\n"}, {"a/x.yaml": "kind: Service # b\n"}, ["a/x.yaml"], True),
        ({"a/x.txt": "1"}, {"a/x.txt": "2"}, ["a/x.txt"], True),
        ({}, {"a/x.yaml": "kind: Service\n"}, ["a/x.yaml"], False),  # added
        ({"a/x.yaml": "kind: Service\n"}, {}, ["a/x.yaml"], False),  # removed
        (
            {"a/kustomization.yaml": "resources: []\n"},
            {"a/kustomization.yaml": "{}\n"},
            ["a/kustomization.yaml"],
            False,
        ),
        ({"a/x.yaml": "kind: Service\n"}, {"a/x.yaml": NEW_CONFIGMAP}, ["a/x.yaml"], False),  # marker at head
        ({"a/x.yaml": NEW_CONFIGMAP}, {"a/x.yaml": "kind: Service\n"}, ["a/x.yaml"], False),  # marker at base
        (
            {"a/ks.yaml": "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"},
            {"a/ks.yaml": "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n# b\n"},
            ["a/ks.yaml"],
            False,
        ),
    ],
)
def test_same_discovery_only_for_changes_discovery_cannot_see(
    tmp_path: Path, base_files: dict[str, str], head_files: dict[str, str], changed: list[str], same: bool
) -> None:
    from bot.domain.render.discovery import same_discovery

    base = _tree(tmp_path / "base", {"keep.yaml": "kind: Service\n", **base_files})
    head = _tree(tmp_path / "head", {"keep.yaml": "kind: Service\n", **head_files})
    assert same_discovery(base, head, changed) is same


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("apps/checkout/base/deployment.yaml", "checkout:2.4.1", "checkout:2.5.0"),
        ("clusters/staging/staging-euw1/cluster.yaml", "name:", "name: x #"),
    ],
)
def test_promotion_diff_reusing_the_base_discovery_shows_what_a_full_discovery_shows(
    fleet_repo: Path, path: str, old: str, new: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.prchecks.build import build_check

    text = (fleet_repo / path).read_text()
    assert old in text
    head = _commit(fleet_repo, "change", {path: text.replace(old, new, 1)})
    reused = build_check(fleet_repo, "main", head, checkers=[], secret_key=b"k")
    monkeypatch.setattr("bot.render_runtime.engine.same_discovery", lambda *a: False)  # discover the head too
    full = build_check(fleet_repo, "main", head, checkers=[], secret_key=b"k")
    assert full.diff.changes, "the change must render to something for the comparison to mean anything"
    assert reused.diff.changes == full.diff.changes
    assert reused.diff.targets_rendered == full.diff.targets_rendered


async def test_self_service_approves_and_merges_a_low_risk_request_only_when_opted_in(
    fleet_repo: Path,
) -> None:
    request = (ROOT / "examples" / "requests" / "good-dev-cluster.yaml").read_text()
    config = fleet_repo / ".github" / "gitops-bot.yml"
    # Off by default (the example fleet): checks only, no review, no merge.
    head = _commit(fleet_repo, "change", {"clusters/dev/payments-dev-euw1/cluster.yaml": request})
    gh = FakeGitHub()
    await _deliver(gh, fleet_repo, _payload(fleet_repo, head))
    assert not [c for c in gh.calls if c.path.endswith(("/reviews", "/merge"))]
    # Opted in on the base branch: the same request is approved and merged at its head sha.
    text = config.read_text().replace(
        "self_service:\n  enabled: false", "self_service:\n  enabled: true\n  max_nodes: 10"
    )
    assert "enabled: true" in text
    config.write_text(text)
    _git(
        fleet_repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "self-service on"
    )
    _git(fleet_repo, "branch", "-D", "change")
    head = _commit(fleet_repo, "change", {"clusters/dev/payments-dev-euw1/cluster.yaml": request})
    permission = ("GET", "/repos/acme/fleet/collaborators/dev/permission")
    # An author without write permission here (a fork author, a reader) gets a review, not the bot's merge.
    gh = FakeGitHub()
    gh.responses[permission] = {"permission": "read", "role_name": "read"}
    await _deliver(gh, fleet_repo, _payload(fleet_repo, head))
    assert [c.path for c in gh.calls if c.path.endswith("/permission")] == [permission[1]]
    assert not [c for c in gh.calls if c.path.endswith(("/reviews", "/merge"))]
    gh = FakeGitHub()
    gh.responses[permission] = {"permission": "write", "role_name": "write"}
    await _deliver(gh, fleet_repo, _payload(fleet_repo, head))
    review = [c for c in gh.calls if c.method == "POST" and c.path.endswith("/pulls/7/reviews")]
    merge = [c for c in gh.calls if c.method == "PUT" and c.path.endswith("/pulls/7/merge")]
    assert len(review) == 1 and review[0].body["event"] == "APPROVE" and review[0].body["commit_id"] == head
    assert len(merge) == 1 and merge[0].body["sha"] == head
    # A bad request is never self-served, even when opted in.
    bad = (ROOT / "examples" / "requests" / "bad-cluster.yaml").read_text()
    _git(fleet_repo, "branch", "-D", "change")
    head = _commit(fleet_repo, "change", {"clusters/dev/analytics-dev-use1/cluster.yaml": bad})
    gh = FakeGitHub()
    await _deliver(gh, fleet_repo, _payload(fleet_repo, head))
    assert not [c for c in gh.calls if c.path.endswith(("/reviews", "/merge"))]


def _check_run_calls(gh: FakeGitHub, start: int = 0) -> dict[str, int]:
    """Count the check-run calls since ``start``: lists of a head's runs, creates, updates."""
    counts = {"list": 0, "create": 0, "update": 0, "total": 0}
    for call in gh.calls[start:]:
        path = call.path.split("?", 1)[0]
        if call.method == "GET" and path.endswith("/check-runs"):
            counts["list"] += 1
        elif call.method == "POST" and path.endswith("/check-runs"):
            counts["create"] += 1
        elif call.method == "PATCH" and "/check-runs/" in path:
            counts["update"] += 1
        else:
            continue
        counts["total"] += 1
    return counts


async def test_one_pull_request_event_lists_the_head_check_runs_once(fleet_repo: Path) -> None:
    head = _commit(fleet_repo, "change", {"common/addons/pr-check-demo.yaml": NEW_CONFIGMAP})
    gh = FakeGitHub()
    payload = _payload(fleet_repo, head)
    await _deliver(gh, fleet_repo, payload)
    first = _check_run_calls(gh)
    start = len(gh.calls)
    await _deliver(gh, fleet_repo, payload)  # a retried delivery: same head, same results
    again = _check_run_calls(gh, start)
    print(
        f"check-run calls per pull_request event: first {first}, retried {again}; "
        f"all REST calls: first {start}, retried {len(gh.calls) - start}"
    )
    assert first == {"list": 1, "create": 3, "update": 0, "total": 4}
    # Nothing changed: every run is already what it should be, so nothing is written.
    assert again == {"list": 1, "create": 0, "update": 0, "total": 1}
    assert len(gh.check_runs) == 3
