"""The fleet handler's governance and health records, trusting only the bot's own check runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bot.domain.fleet import ClusterFacts, EnvFacts
from bot.domain.promotion.decide import History, Record
from bot.fleet import state
from bot.queue import open_store
from bot.service.context import HandlerContext
from bot.service.records import write_record
from handlers.fleet import on_merged, on_status
from tests.support.github import FakeGitHub, make_event
from tests.support.gitrepo import tree_repo
from tests.support.repos import FakeRepoAccess

REPO = "acme/fleet"
DASHBOARD_ON = SimpleNamespace(oauth_client_id="Iv23test", fleet_token=None)
BOT = "gitops-bot[bot]"


def _run(name: str, conclusion: str, slug: str = "gitops-bot") -> dict[str, Any]:
    return {"name": name, "status": "completed", "conclusion": conclusion, "app": {"slug": slug}}


def _merged(number: int, head: str, ref: str = "feature", user: str = "alice") -> dict[str, Any]:
    return {
        "action": "closed",
        "repository": {"full_name": REPO, "default_branch": "main"},
        "pull_request": {
            "number": number,
            "title": f"PR {number}",
            "merged": True,
            "merged_at": "2026-12-01T10:00:00Z",
            "user": {"login": user},
            "head": {"sha": head, "ref": ref},
            "base": {"ref": "env/prod"},
        },
    }


async def test_merged_prs_signatures_approvals_and_bypass(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    await store.open()
    try:
        ctx = HandlerContext(repos=FakeRepoAccess(), store=store, bot_login=BOT, settings=DASHBOARD_ON)
        await state.save_branch(
            store, [ClusterFacts(REPO, "env/prod", "prod", "c1")], EnvFacts(REPO, "prod", "env/prod", "tip")
        )
        gh = FakeGitHub(
            responses={
                ("GET", f"/repos/{REPO}/commits/aaa/check-runs"): {
                    "check_runs": [
                        _run("gitops-bot/signatures", "success"),
                        _run("gitops-bot/approvals", "success"),
                        _run("gitops-bot", "success"),
                    ]
                },
                ("GET", f"/repos/{REPO}/commits/bbb/check-runs"): {
                    "check_runs": [
                        _run("gitops-bot/signatures", "success"),
                        _run(
                            "gitops-bot/approvals", "success", slug="someone-else"
                        ),  # not the bot's: ignored
                        _run("gitops-bot/validate", "failure"),
                    ]
                },
                ("GET", f"/repos/{REPO}/commits/tip/status"): {
                    "state": "failure",
                    "statuses": [{"context": "flux/prod", "state": "failure"}],
                },
            }
        )
        await on_merged(make_event("pull_request", _merged(1, "aaa")), gh, ctx)
        await on_merged(make_event("pull_request", _merged(2, "bbb")), gh, ctx)
        await on_merged(make_event("pull_request", _merged(2, "bbb")), gh, ctx)  # redelivered: once
        # a promotion branch opened by someone other than the bot is no promotion
        await on_merged(
            make_event("pull_request", _merged(3, "aaa", "gitops-bot/promote/prod/abc1234")), gh, ctx
        )
        history = History(4, "t", "staging", "prod", 4, "c" * 40, "cherry-pick")
        branch = "gitops-bot/promote/prod/abc1234"
        await write_record(ctx, REPO, Record("promotion", branch, "env/prod", history, ("aaa",), 4))
        await on_merged(
            make_event("pull_request", _merged(4, "aaa", "gitops-bot/promote/prod/abc1234", user=BOT)),
            gh,
            ctx,
        )
        # the App's login on a promotion branch proves nothing either: only the bot's own record does
        await on_merged(
            make_event("pull_request", _merged(5, "aaa", "gitops-bot/promote/prod/def5678", user=BOT)),
            gh,
            ctx,
        )
        await on_status(
            make_event("status", {"sha": "tip", "state": "failure", "repository": {"full_name": REPO}}),
            gh,
            ctx,
        )
        facts = await state.load_facts(store)
        by_number = {m.number: m for m in facts.merged}
        assert sorted(by_number) == [1, 2, 3, 4, 5]
        assert by_number[1].signed and by_number[1].approved and by_number[1].failing_checks == ()
        assert by_number[2].signed and not by_number[2].approved
        assert by_number[2].failing_checks == ("gitops-bot/validate",)
        env = facts.envs[0]
        assert env.last_promotion is not None and env.last_promotion["number"] == 4
        assert env.health == "failing" and "flux/prod: failure" in env.health_detail
        # without GitHub login or a fleet token nobody can look, so nothing is collected
        off = HandlerContext(repos=FakeRepoAccess(), store=store, bot_login=BOT)
        calls = len(gh.calls)
        await on_merged(make_event("pull_request", _merged(9, "aaa")), gh, off)
        assert len(gh.calls) == calls and 9 not in {m.number for m in (await state.load_facts(store)).merged}
    finally:
        await store.close()


async def test_open_promotions_and_their_gates(tmp_path: Path) -> None:
    from handlers.fleet import on_promotion_check, on_promotion_pr

    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    await store.open()
    try:
        ctx = HandlerContext(repos=FakeRepoAccess(), store=store, bot_login=BOT, settings=DASHBOARD_ON)
        await state.save_branch(store, [], EnvFacts(REPO, "prod", "env/prod", "tip"))
        gh = FakeGitHub()
        opened = _merged(5, "ccc", "gitops-bot/promote/prod/abc1234", user=BOT)
        opened["action"] = "opened"
        opened["pull_request"] |= {"merged": False, "state": "open"}
        forged = _merged(6, "ddd", "gitops-bot/promote/prod/abc1234", user="mallory")
        forged["action"] = "opened"
        forged["pull_request"] |= {"merged": False, "state": "open"}
        history = History(5, "t", "staging", "prod", 5, "c" * 40, "cherry-pick")
        branch = "gitops-bot/promote/prod/abc1234"
        await write_record(ctx, REPO, Record("promotion", branch, "env/prod", history, ("ccc",), 5))
        await on_promotion_pr(make_event("pull_request", opened), gh, ctx)
        await on_promotion_pr(make_event("pull_request", forged), gh, ctx)  # not the bot's: ignored

        def run(slug: str) -> dict[str, Any]:
            return {
                "action": "completed",
                "repository": {"full_name": REPO},
                "check_run": {
                    "name": "gitops-bot/promotion",
                    "status": "completed",
                    "conclusion": "action_required",
                    "app": {"slug": slug},
                    "output": {"title": f"Promotion gates waiting: soak ({slug})"},
                    "pull_requests": [{"number": 5, "base": {"ref": "env/prod"}}],
                },
            }

        await on_promotion_check(make_event("check_run", run("gitops-bot")), gh, ctx)
        await on_promotion_check(make_event("check_run", run("impostor")), gh, ctx)  # ignored
        env = await state.load_env(store, REPO, "env/prod")
        assert env is not None
        assert env.open_promotions == (
            {"number": 5, "title": "PR 5", "gates": "Promotion gates waiting: soak (gitops-bot)"},
        )
        # a push recomputing the branch keeps them; closing the PR removes it
        await state.save_branch(store, [], EnvFacts(REPO, "prod", "env/prod", "tip2"))
        assert (await state.load_env(store, REPO, "env/prod")).open_promotions[0]["number"] == 5  # type: ignore[union-attr]
        closed = dict(opened, action="closed")
        closed["pull_request"] = dict(opened["pull_request"], state="closed")
        await on_promotion_pr(make_event("pull_request", closed), gh, ctx)
        assert (await state.load_env(store, REPO, "env/prod")).open_promotions == ()  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_holds_from_the_bots_records_and_freezes_from_the_default_branch(tmp_path: Path) -> None:

    from bot.service.records import set_held
    from handlers.fleet import refresh_branch

    repo = tmp_path / "repo"
    (repo / ".github").mkdir(parents=True)
    (repo / ".github/gitops-bot.yml").write_text(
        "version: 1\nenvironments:\n  - {name: dev, branch: env/dev}\n  - name: prod\n    branch: env/prod\n"
        "    gates:\n      freeze:\n        - {start: '2026-12-20', end: '2027-01-04', reason: Holidays}\n"
    )
    tree_repo(repo)

    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    await store.open()
    try:
        ctx = HandlerContext(
            repos=FakeRepoAccess(path=repo / ".git"), store=store, bot_login=BOT, settings=DASHBOARD_ON
        )
        promotions = (
            {"number": 5, "title": "Promote", "gates": ""},
            {"number": 6, "title": "Other", "gates": ""},
        )
        await state.save_branch(
            store, [], EnvFacts(REPO, "prod", "env/prod", "tip", open_promotions=promotions)
        )
        await set_held(ctx, REPO, 6, True)  # what `/hold` and the hold label record
        await set_held(ctx, REPO, 7, True)  # not an open promotion into an environment: not listed
        env = (await state.load_facts(store)).envs[0]
        assert env.holds == ({"number": 6, "title": "Other"},) and env.freeze == ()
        await set_held(ctx, REPO, 6, False)  # `/unhold`
        assert (await state.load_facts(store)).envs[0].holds == ()
        # a push to the default branch brings its freeze windows to every known environment
        payload = {"repository": {"full_name": REPO, "default_branch": "main"}}
        assert await refresh_branch(ctx, REPO, "main", payload) is False  # not an environment branch
        env = (await state.load_facts(store)).envs[0]
        assert env.freeze == ({"start": "2026-12-20", "end": "2027-01-04", "reason": "Holidays"},)
    finally:
        await store.close()


REGISTRY = "version: 1\nclusters:\n{entries}environments:\n  - {{name: prod, branch: env/prod}}\n"
REQUEST = (
    "apiVersion: eks.services.k8s.aws/v1alpha1\nkind: Cluster\nmetadata:\n  name: {name}\n"
    "spec:\n  name: {name}\n  version: '1.33'\n"
)


def _entry(name: str) -> str:
    return f"  - {{name: {name}, env: prod, path: clusters/prod/{name}}}\n"


async def test_a_config_change_on_the_default_branch_recomputes_every_environment(tmp_path: Path) -> None:
    """The registry lives on the default branch: after a blue/green upgrade swaps it there, env/prod
    must be read again (it showed the removed cluster with an unknown version until its next push)."""
    from handlers.fleet import refresh_branch

    repo = tree_repo(
        tmp_path / "repo",
        {
            ".github/gitops-bot.yml": REGISTRY.format(entries=_entry("shop-a") + _entry("shop-b")),
            "clusters/prod/shop-b/cluster.yaml": REQUEST.format(name="shop-b"),
        },
    )
    repo.git("branch", "env/prod")
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    await store.open()
    try:
        ctx = HandlerContext(
            repos=FakeRepoAccess(path=repo.path / ".git"), store=store, bot_login=BOT, settings=DASHBOARD_ON
        )
        payload: dict[str, Any] = {"repository": {"full_name": REPO, "default_branch": "main"}}
        assert await refresh_branch(ctx, REPO, "env/prod", payload)

        def versions() -> dict[str, str | None]:
            return {c.cluster: c.version for c in facts.clusters}

        facts = await state.load_facts(store)
        assert versions() == {"shop-a": None, "shop-b": "1.33"}  # shop-a: registered, no request
        repo.commit({".github/gitops-bot.yml": REGISTRY.format(entries=_entry("shop-b"))}, "registry: shop-b")
        other = {**payload, "commits": [{"modified": ["README.md"]}]}
        await refresh_branch(ctx, REPO, "main", other)  # a push that leaves the configuration alone
        facts = await state.load_facts(store)
        assert "shop-a" in versions()
        touched = {**payload, "commits": [{"modified": [".github/gitops-bot.yml"]}]}
        await refresh_branch(ctx, REPO, "main", touched)
        facts = await state.load_facts(store)
        assert versions() == {"shop-b": "1.33"}
        # Flux reported on env/prod's new tip before the push was processed (on_status, knowing only
        # the old tip, dropped it): the push reads the new tip's health itself
        tip = repo.commit({"clusters/prod/shop-b/cluster.yaml": REQUEST.format(name="shop-b") + "# x\n"})
        repo.git("branch", "-f", "env/prod", tip)
        gh = FakeGitHub()
        gh.set_status(tip, "flux/kustomization", "success")
        await on_status(make_event("status", {"sha": tip, "repository": {"full_name": REPO}}), gh, ctx)
        assert await refresh_branch(ctx, REPO, "env/prod", payload, gh)
        env = (await state.load_facts(store)).envs[0]
        assert (env.head, env.health) == (tip, "healthy"), env
    finally:
        await store.close()
