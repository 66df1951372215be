"""The governance handler with a recording GitHub client and a real local git repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.service.context import HandlerContext
from handlers.governance import APPROVALS_CHECK, SIGNATURES_CHECK, router
from tests.conftest import FIXTURES
from tests.support.github import FakeGitHub, make_event
from tests.support.gitrepo import SSH_SIG, GitRepo, SshKey, github_commit, make_ssh_key
from tests.support.repos import FakeRepoAccess

REPO = "org/fleet"


def config_yaml(trust: str = "keys") -> str:
    return f"""\
version: 1
signatures:
  required: true
  trust: {trust}
approvals:
  rules:
    - name: prod
      paths: ["clusters/prod/**"]
      require:
        count: 1
        teams: [org/platform-team]
"""


@pytest.fixture(scope="module")
def alice(tmp_path_factory: pytest.TempPathFactory) -> SshKey:
    return make_ssh_key(tmp_path_factory.mktemp("ssh"), "alice", "alice@example.com")


class World:
    """A PR in a real repository plus the canned GitHub answers that go with it."""

    def __init__(self, tmp_path: Path, key: SshKey, trust: str = "keys") -> None:
        self.key = key
        self.repo = GitRepo(tmp_path / "fleet")
        self.base = self.repo.commit(
            {
                ".github/gitops-bot.yml": config_yaml(trust),
                ".github/allowed_signers": key.allowed_line() + "\n",
                ".github/CODEOWNERS": "/docs/ @org/docs-team\n",
                "clusters/prod/eu-1/cluster.yaml": "size: 3\n",
            },
            "base",
        )
        self.repo.git("checkout", "-q", "-b", "feature")
        self.gh = FakeGitHub()
        self.repos = FakeRepoAccess(path=self.repo.git_dir)
        self.reviews: list[dict[str, Any]] = []
        self.members = {"pat"}
        self.check_runs: dict[str, list[dict[str, Any]]] = {}
        self.head = self.base

    def rebase_noop(self) -> str:
        """Re-create the head commit with the same tree (a new sha, like a rebase that changed nothing)."""
        env = {
            "GIT_AUTHOR_NAME": "Alice",
            "GIT_AUTHOR_EMAIL": "alice@example.com",
            "GIT_COMMITTER_NAME": "Alice",
            "GIT_COMMITTER_EMAIL": "alice@example.com",
            "GIT_COMMITTER_DATE": "1700099999 +0000",
        }
        key = f"user.signingkey={self.key.private}"
        self.repo.git(
            "-c", "gpg.format=ssh", "-c", key, "commit", "-q", "--amend", "--no-edit", "-S", env=env
        )
        self.head = self.repo.head()
        self.repo.git("update-ref", "refs/pull/1/head", self.head)
        return self.head

    def push(self, n: int = 1, *, content: str | None = None) -> str:
        for i in range(n):
            self.repo.commit(
                {"clusters/prod/eu-1/cluster.yaml": content or f"size: {i + 4}\n"},
                f"change {i}",
                ssh=self.key,
            )
        self.head = self.repo.head()
        self.repo.git("update-ref", "refs/pull/1/head", self.head)
        return self.head

    def review(self, user: str, state: str = "APPROVED", commit: str | None = None) -> None:
        self.reviews.append(
            {
                "id": len(self.reviews) + 1,
                "user": {"login": user},
                "state": state,
                "commit_id": commit or self.head,
            }
        )

    def pr(self) -> dict[str, Any]:
        return {
            "number": 1,
            "state": "open",
            "user": {"login": "alice"},
            "head": {"sha": self.head, "ref": "feature"},
            "base": {"sha": self.base, "ref": "main"},
        }

    def _answers(self) -> None:
        r = self.gh.responses
        r[("GET", f"/repos/{REPO}/pulls/1/reviews?per_page=100")] = list(self.reviews)
        commits = self.repo.git("rev-list", "--reverse", f"{self.base}..{self.head}").split()
        r[("GET", f"/repos/{REPO}/pulls/1/commits?per_page=100")] = [
            github_commit(s, "alice@example.com", verified=True, reason="valid", signature=SSH_SIG)
            for s in commits
        ]
        r[("GET", f"/repos/{REPO}/commits/{self.head}/check-runs?per_page=100")] = {
            "total_count": len(self.check_runs.get(self.head, [])),
            "check_runs": self.check_runs.get(self.head, []),
        }
        for review in self.reviews:
            login = review["user"]["login"]
            permission = ("GET", f"/repos/{REPO}/collaborators/{login}/permission")
            r.setdefault(permission, {"permission": "write", "role_name": "write"})
            path = f"/orgs/org/teams/platform-team/memberships/{login}"
            r[("GET", path)] = (
                {"state": "active"} if login in self.members else (404, {"message": "Not Found"})
            )

    async def dispatch(self, event: str, action: str) -> dict[str, dict[str, Any]]:
        """Deliver one event; return the check-run body written per name during it."""
        self._answers()
        start = len(self.gh.calls)
        payload: dict[str, Any] = {
            "action": action,
            "pull_request": self.pr(),
            "repository": {"full_name": REPO},
        }
        if event == "pull_request_review":
            payload["review"] = self.reviews[-1] if self.reviews else {}
        ctx = HandlerContext(repos=self.repos)
        await router.dispatch(make_event(event, payload), self.gh, ctx)
        written: dict[str, dict[str, Any]] = {}
        for call in self.gh.calls[start:]:
            if call.method == "POST" and call.path.endswith("/check-runs"):
                written[call.body["name"]] = call.body
                runs = self.check_runs.setdefault(call.body["head_sha"], [])
                runs.append(
                    {"id": 100 + len(runs), "name": call.body["name"], "head_sha": call.body["head_sha"]}
                )
            elif call.method == "PATCH":
                run_id = int(call.path.rsplit("/", 1)[1])
                name = next(c["name"] for runs in self.check_runs.values() for c in runs if c["id"] == run_id)
                written[name] = call.body
        self.last_calls = self.gh.calls[start:]
        return written


async def test_prod_pr_blocked_until_team_approves_then_stale_after_push(
    tmp_path: Path, alice: SshKey
) -> None:
    w = World(tmp_path, alice)
    w.push()
    out = await w.dispatch("pull_request", "opened")
    assert out[SIGNATURES_CHECK]["conclusion"] == "success"
    assert out[APPROVALS_CHECK]["conclusion"] == "failure"
    assert (
        "1 more from @org/platform-team for `clusters/prod/**`" in out[APPROVALS_CHECK]["output"]["summary"]
    )
    assert w.repos.fetched == [(REPO, ("refs/pull/1/head",))]

    w.review("mallory")  # not in the team
    out = await w.dispatch("pull_request_review", "submitted")
    assert out[APPROVALS_CHECK]["conclusion"] == "failure"
    assert [c.method for c in w.last_calls if "check-runs" in c.path] == ["GET", "PATCH", "PATCH"]

    w.review("pat")
    out = await w.dispatch("pull_request_review", "submitted")
    assert out[APPROVALS_CHECK]["conclusion"] == "success"
    assert out[APPROVALS_CHECK]["output"]["title"] == "Approved: 1 of 1 rule satisfied"

    approved = w.head
    assert w.rebase_noop() != approved  # a rebase that changes nothing in the files keeps the approval...
    out = await w.dispatch("pull_request", "synchronize")
    assert out[APPROVALS_CHECK]["conclusion"] == "success"
    assert out[SIGNATURES_CHECK]["conclusion"] == "success"

    w.push(content="size: 99\n")  # ...a push that changes the tree does not
    out = await w.dispatch("pull_request", "synchronize")
    assert out[APPROVALS_CHECK]["conclusion"] == "failure"
    assert "- @pat for prod" in out[APPROVALS_CHECK]["output"]["summary"]

    w.review("pat")
    out = await w.dispatch("pull_request_review", "submitted")
    assert out[APPROVALS_CHECK]["conclusion"] == "success"


async def test_changes_requested_blocks_until_dismissed(tmp_path: Path, alice: SshKey) -> None:
    w = World(tmp_path, alice)
    w.push()
    w.members.add("paula")
    w.review("pat")
    w.review("paula", "CHANGES_REQUESTED")
    out = await w.dispatch("pull_request_review", "submitted")
    assert out[APPROVALS_CHECK]["conclusion"] == "failure"
    assert out[APPROVALS_CHECK]["output"]["title"] == "Blocked: changes requested by @paula"
    w.reviews[-1]["state"] = "DISMISSED"
    out = await w.dispatch("pull_request_review", "dismissed")
    assert out[APPROVALS_CHECK]["conclusion"] == "success"


async def test_unsigned_commit_fails_signatures(tmp_path: Path, alice: SshKey) -> None:
    w = World(tmp_path, alice)
    w.push()
    w.repo.commit({"clusters/prod/eu-1/cluster.yaml": "size: 7\n"}, "unsigned change")
    w.head = w.repo.head()
    w.repo.git("update-ref", "refs/pull/1/head", w.head)
    out = await w.dispatch("pull_request", "synchronize")
    sig = out[SIGNATURES_CHECK]
    assert sig["conclusion"] == "failure"
    assert sig["output"]["title"] == "1 of 2 commits fail the signature policy"
    assert "git commit --amend -S --no-edit" in sig["output"]["summary"]


async def test_invalid_base_config_gives_a_clear_failure(tmp_path: Path, alice: SshKey) -> None:
    w = World(tmp_path, alice)
    w.repo.git("checkout", "-q", "main")
    w.base = w.repo.commit(
        {".github/gitops-bot.yml": "version: 1\nsignatures: {required: maybe}\n"}, "broken"
    )
    w.repo.git("checkout", "-q", "-B", "feature")
    w.push()
    out = await w.dispatch("pull_request", "opened")
    for name in (SIGNATURES_CHECK, APPROVALS_CHECK):
        assert out[name]["conclusion"] == "failure"
        assert out[name]["output"]["title"] == "Invalid configuration on the base branch"
        assert "signatures/required" in out[name]["output"]["summary"]


async def test_closed_pull_request_is_ignored(tmp_path: Path, alice: SshKey) -> None:
    w = World(tmp_path, alice)
    w.push()
    ctx = HandlerContext(repos=w.repos)
    pr = {**w.pr(), "state": "closed"}
    await router.dispatch(
        make_event(
            "pull_request", {"action": "edited", "pull_request": pr, "repository": {"full_name": REPO}}
        ),
        w.gh,
        ctx,
    )
    assert w.gh.calls == []


@pytest.mark.slow
@pytest.mark.parametrize("trust", ["keys", "github"])
async def test_rest_calls_do_not_grow_with_commits(tmp_path: Path, alice: SshKey, trust: str) -> None:
    counts = {}
    for n in (1, 100):
        w = World(tmp_path / f"{trust}-{n}", alice, trust=trust)
        w.push(n)
        w.review("pat")
        w.review("mallory")
        for _ in range(1 if n == 1 else 97):  # 100 commits come with 100 reviews
            w.review("pat", "COMMENTED")
        out = await w.dispatch("pull_request_review", "submitted")
        assert out[SIGNATURES_CHECK]["conclusion"] == "success", out[SIGNATURES_CHECK]["output"]
        assert out[APPROVALS_CHECK]["conclusion"] == "success"
        counts[n] = [f"{c.method} {c.path}" for c in w.last_calls]
    assert len(counts[1]) == len(counts[100])
    # reviews, 2 memberships, 2 permissions, check-runs list, 2 writes (+ commits)
    expected = 8 if trust == "keys" else 9
    assert len(counts[1]) == expected, counts[1]
    print(
        f"REST calls per event (trust: {trust}): "
        f"1 commit -> {len(counts[1])}, 100 commits -> {len(counts[100])}"
    )


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ("pull_request", "synchronize.payload.json"),
        ("pull_request_review", "submitted.payload.json"),
        ("pull_request_review", "dismissed.payload.json"),
    ],
)
async def test_real_github_payloads(tmp_path: Path, alice: SshKey, event: str, name: str) -> None:
    """GitHub's own example payloads (octokit/webhooks), pointed at our repository's shas."""
    w = World(tmp_path, alice)
    w.push()
    w.review("pat")
    payload = json.loads((FIXTURES / "governance" / "webhooks" / name).read_text())
    pr = payload["pull_request"]
    pr["number"] = 1
    pr["head"]["sha"], pr["base"]["sha"], pr["base"]["ref"] = w.head, w.base, "main"
    payload["repository"]["full_name"] = REPO
    w._answers()
    await router.dispatch(make_event(event, payload), w.gh, HandlerContext(repos=w.repos))
    written = {c.body["name"]: c.body["conclusion"] for c in w.gh.writes()}
    assert written == {SIGNATURES_CHECK: "success", APPROVALS_CHECK: "success"}


async def test_permissions_looked_up_once_per_reviewer_only_when_needed(
    tmp_path: Path, alice: SshKey
) -> None:
    w = World(tmp_path, alice)
    w.repo.git("checkout", "-q", "main")
    w.base = w.repo.commit(
        {
            ".github/gitops-bot.yml": "version: 1\napprovals:\n  rules:\n    - name: admins\n"
            "      require: {count: 1, min_permission: maintain}\n"
        },
        "admins only",
    )
    w.repo.git("checkout", "-q", "-B", "feature")
    w.push()
    w.review("writer")
    w.review("boss")
    w.review("boss")  # a second review by the same person: still one lookup
    w.gh.responses[("GET", f"/repos/{REPO}/collaborators/writer/permission")] = {"permission": "write"}
    w.gh.responses[("GET", f"/repos/{REPO}/collaborators/boss/permission")] = {
        "permission": "write",
        "role_name": "maintain",
    }
    out = await w.dispatch("pull_request_review", "submitted")
    assert out[APPROVALS_CHECK]["conclusion"] == "success"
    assert out[SIGNATURES_CHECK]["output"]["title"] == "No signature policy configured"
    lookups = sorted(c.path for c in w.last_calls if "/collaborators/" in c.path)
    assert lookups == [f"/repos/{REPO}/collaborators/{u}/permission" for u in ("boss", "writer")]


async def test_team_membership_forbidden_is_explained(tmp_path: Path, alice: SshKey) -> None:
    w = World(tmp_path, alice)
    w.push()
    w.review("pat")
    w._answers()
    w.gh.responses[("GET", "/orgs/org/teams/platform-team/memberships/pat")] = (403, {"message": "Forbidden"})
    w._answers = lambda: None  # type: ignore[method-assign]
    out = await w.dispatch("pull_request_review", "submitted")
    approvals = out[APPROVALS_CHECK]
    assert approvals["conclusion"] == "failure"
    assert "*Members: read*" in approvals["output"]["summary"]


async def test_membership_cached_within_the_event(tmp_path: Path, alice: SshKey) -> None:
    w = World(tmp_path, alice)
    w.push()
    w.review("pat")
    w._answers()
    ctx = HandlerContext(repos=w.repos)
    payload = {"action": "submitted", "pull_request": w.pr(), "repository": {"full_name": REPO}}
    await router.dispatch(make_event("pull_request_review", payload), w.gh, ctx)
    await router.dispatch(make_event("pull_request_review", payload), w.gh, ctx)  # same delivery's cache
    assert len([c for c in w.gh.calls if "/memberships/" in c.path]) == 1


def test_trees_resolves_known_commits_and_skips_odd_ids(tmp_path: Path, alice: SshKey) -> None:
    from handlers.governance import _trees

    w = World(tmp_path, alice)
    head = w.push()
    trees = _trees(w.repo.git_dir, [head, "f" * 40, "not a sha\nHEAD", ""])
    assert trees == {head: w.repo.tree(head)}


async def test_check_runs_update_the_newest_of_a_name_and_clip_long_texts() -> None:
    from bot.github.checks import write_check_runs
    from bot.github.writes import GitHubWrites
    from handlers.governance import CheckRunResult, _check_run

    gh = FakeGitHub()
    sha = "a" * 40
    gh.responses[("GET", f"/repos/{REPO}/commits/{sha}/check-runs?per_page=100")] = {
        "check_runs": [
            {"id": 5, "name": SIGNATURES_CHECK, "head_sha": sha},
            {"id": 9, "name": SIGNATURES_CHECK, "head_sha": sha},
            {"id": 7, "name": "someone-else", "head_sha": sha},
        ]
    }
    results = [
        CheckRunResult(SIGNATURES_CHECK, "success", "t", "s"),
        CheckRunResult(APPROVALS_CHECK, "failure", "t" * 300, "x" * 70_000),
    ]
    await write_check_runs(gh, REPO, sha, [_check_run(sha, r) for r in results], writes=GitHubWrites())
    listing, patch, post = gh.calls
    assert listing.method == "GET"
    assert (patch.method, patch.path) == ("PATCH", f"/repos/{REPO}/check-runs/9")
    assert (post.method, post.body["name"], post.body["head_sha"]) == ("POST", APPROVALS_CHECK, sha)
    assert len(post.body["output"]["title"]) == 255
    summary = post.body["output"]["summary"]
    assert len(summary) <= 65_535
    assert summary.endswith("(truncated: too long for a check run; see the bot logs)")
