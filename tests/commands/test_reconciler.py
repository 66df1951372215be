"""The reconciler: lost webhooks recovered in one pass, open PRs re-evaluated, passes idempotent."""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import gidgethub.abc
import pytest

from bot.domain.promotion.decide import Record
from bot.queue.base import Delivery, DeliveryStore, Status
from bot.service.context import HandlerContext
from handlers.reconcile import router as remember_router
from handlers.reconciler import (
    STATE_KEY,
    RepoTarget,
    checked_at_head,
    known_repos,
    reconcile_once,
    reconciler_context,
    remember_repos_from_payload,
    run_reconciler,
)
from tests.support.github import FakeGitHub, make_event
from tests.support.repos import FakeRepoAccess
from tests.support.store import StateStore

REPO = "acme/fleet"
BOT_LOGIN = "gitops-bot[bot]"
API = f"/repos/{REPO}"


def pr(
    number: int, sha: str, *, ref: str = "feature", base: str = "dev", labels: Sequence[str] = ()
) -> dict[str, Any]:
    return {
        "number": number,
        "state": "open",
        "title": f"PR {number}",
        "head": {"ref": ref, "sha": sha},
        "base": {"ref": base, "sha": "b" * 40},
        "labels": [{"name": n} for n in labels],
    }


@dataclass
class World:
    """A tiny GitHub: open and merged PRs, check runs per commit; the fakes below change it."""

    open_prs: list[dict[str, Any]] = field(default_factory=list)
    merged: list[dict[str, Any]] = field(default_factory=list)
    check_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    log: list[tuple[str, Any]] = field(default_factory=list)
    broken_prs: set[int] = field(default_factory=set)
    empty_repos: list[str] = field(default_factory=list)
    reconcile_evaluates: bool = False
    conflict: bool = False
    store: StateStore = field(default_factory=StateStore)
    upgrade_passes: list[str] = field(default_factory=list)

    def promotion(self, number: int, sha: str, ref: str, base: str = "staging") -> dict[str, Any]:
        """An open promotion PR the bot opened and pushed, with the bot's record of it."""
        made = {
            **pr(number, sha, ref=ref, base=base, labels=["gitops-bot/promotion"]),
            "user": {"login": BOT_LOGIN},
        }
        record = Record("promotion", ref, base, None, (sha,), number)
        self.store.state[f"promotion:{REPO}:{ref}"] = record.to_json()
        return made

    def github(self) -> FakeGitHub:
        answers: dict[tuple[str, str], Any] = {
            ("GET", f"{API}/pulls"): lambda _: [dict(p) for p in self.open_prs],
        }
        for name in self.empty_repos:
            answers[("GET", f"/repos/{name}/pulls")] = []
        for p in [*self.open_prs, *self.merged]:
            answers[("GET", f"{API}/pulls/{p['number']}")] = {**p, "full": True}
            sha = p["head"]["sha"]
            answers[("GET", f"{API}/commits/{sha}/check-runs")] = lambda _, sha=sha: {
                "total_count": len(self.check_runs.get(sha, [])),
                "check_runs": self.check_runs.get(sha, []),
            }
        return FakeGitHub(answers)

    # the fake handlers.pull_request / handlers.promotion APIs
    async def run_pr_checks(self, gh: Any, ctx: Any, *, repo: str, pr: dict[str, Any]) -> None:
        if pr["number"] in self.broken_prs:
            raise RuntimeError("render failed")
        self.log.append(("run_pr_checks", (repo, pr["number"], pr.get("full"))))
        self.check_runs.setdefault(pr["head"]["sha"], []).append(
            {"name": "gitops-bot/validate", "status": "completed", "conclusion": "success"}
        )

    async def evaluate_promotion(self, gh: Any, ctx: Any, *, repo: str, promotion_pr: int) -> Any:
        self.log.append(("evaluate_promotion", (repo, promotion_pr)))
        return types.SimpleNamespace(ok=True, message="gates pending", url=None)

    async def reconcile_promotions(self, gh: gidgethub.abc.GitHubAPI, ctx: Any, *, repo: str) -> list[Any]:
        """Open the promotion PR of every merged dev PR that has none (as the real one would)."""
        outcomes = []
        if self.reconcile_evaluates:  # like the real one: evaluate open promotion PRs too
            for p in self.open_prs:
                if p["head"]["ref"].startswith("gitops-bot/promote/") or p["labels"]:
                    url = p.get("html_url") or f"https://github.com/{repo}/pull/{p['number']}"
                    outcomes.append(
                        types.SimpleNamespace(ok=True, message=f"#{p['number']}: soak time pending", url=url)
                    )
        for source in self.merged:
            if self.conflict:
                message = f"#{source['number']} conflicts in clusters/staging/payments.yaml"
                outcomes.append(types.SimpleNamespace(ok=False, message=message, url=None))
                continue
            branch = f"gitops-bot/promote/staging/{source['head']['sha'][:7]}"
            if any(p["head"]["ref"] == branch for p in self.open_prs):
                continue
            await gh.post(f"/repos/{repo}/pulls", data={"title": "t", "head": branch, "base": "staging"})
            number = 100 + source["number"]
            self.open_prs.append(self.promotion(number, "c" * 40, branch))
            outcomes.append(
                types.SimpleNamespace(
                    ok=True, message=f"opened the promotion of #{source['number']}", url=f"#{number}"
                )
            )
        self.log.append(("reconcile_promotions", repo))
        return outcomes

    async def reconcile_upgrades(self, gh: gidgethub.abc.GitHubAPI, ctx: Any, repo: str) -> list[str]:
        self.upgrade_passes.append(repo)
        return []

    def names(self) -> list[str]:
        return [name for name, _ in self.log]


@dataclass
class Clients:
    """GitHubClients over one World; the App-level client answers the installation lookups."""

    world: World
    app: FakeGitHub = field(default_factory=FakeGitHub)
    clients: list[FakeGitHub] = field(default_factory=list)
    installations: list[int] = field(default_factory=list)

    async def installation_api(self, installation_id: int) -> gidgethub.abc.GitHubAPI:
        self.installations.append(installation_id)
        gh = self.world.github()
        self.clients.append(gh)
        return gh

    async def installation_token(self, installation_id: int) -> str:
        raise AssertionError("the reconciler needs no raw token")

    async def app_api(self) -> gidgethub.abc.GitHubAPI:
        return self.app

    def writes(self) -> list[Any]:
        return [c for gh in self.clients for c in gh.writes()]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    w = World()
    for name in ("evaluate_promotion", "reconcile_promotions", "run_pr_checks", "reconcile_upgrades"):
        monkeypatch.setattr(f"handlers.reconciler.{name}", getattr(w, name))
    return w


def factory(store: DeliveryStore | None = None, settings: Any = None) -> Any:
    return lambda: HandlerContext(repos=FakeRepoAccess(), store=store, settings=settings)


TARGETS = [RepoTarget(REPO, 11)]


async def test_lost_merge_webhook_is_recovered_in_one_pass(world: World) -> None:
    world.merged.append({**pr(5, "d" * 40), "state": "closed", "merged": True})
    clients = Clients(world)
    report = await reconcile_once(clients, factory(world.store), repos=TARGETS)
    assert report.promotions_recovered == [f"{REPO}: opened the promotion of #5 (#105)"]
    assert [c.path for c in clients.writes()] == [f"{API}/pulls"]
    assert world.open_prs[-1]["head"]["ref"] == "gitops-bot/promote/staging/ddddddd"
    assert report.errors == []
    # next pass: the promotion exists; its gates are evaluated, nothing is opened again
    again = await reconcile_once(clients, factory(world.store), repos=TARGETS)
    assert again.promotions_recovered == []
    assert again.promotions_evaluated == [f"{REPO}#105: gates pending"]
    assert [c.path for c in clients.writes()] == [f"{API}/pulls"]


async def test_open_prs_without_a_check_at_head_are_checked_again(world: World) -> None:
    world.open_prs += [pr(1, "1" * 40), pr(2, "2" * 40), pr(3, "3" * 40)]
    world.check_runs["2" * 40] = [{"name": "gitops-bot/validate", "status": "completed"}]
    world.check_runs["3" * 40] = [{"name": "ci/build", "status": "completed"}]
    report = await reconcile_once(Clients(world), factory(), repos=TARGETS)
    assert sorted(report.checked) == [f"{REPO}#1", f"{REPO}#3"]
    assert report.up_to_date == 1
    assert report.open_prs == 3
    # the checks get the full PR (GET /pulls/{n}), not the list item
    assert {args for name, args in world.log if name == "run_pr_checks"} == {(REPO, 1, True), (REPO, 3, True)}
    assert "3 open PRs (1 up to date, 2 checked again)" in report.summary()


class QueuedStore(StateStore):
    """A store with deliveries still waiting for some pull requests."""

    def __init__(self, keys: Sequence[str]) -> None:
        super().__init__()
        now = datetime.now(UTC)
        self.queued = [
            Delivery(f"d{i}", "pull_request", "opened", b"{}", 11, key, Status.PENDING, 0, now)
            for i, key in enumerate(keys)
        ]

    async def recent(self, *, status: Status | None = None, limit: int = 20) -> list[Delivery]:
        return [d for d in self.queued if status is None or d.status is status][:limit]


async def test_prs_with_a_queued_delivery_are_left_to_it(world: World) -> None:
    """The delivery (maybe on another replica) checks the PR; the reconciler would do it twice."""
    world.open_prs += [pr(1, "1" * 40), pr(2, "2" * 40)]
    store = QueuedStore([f"{REPO}#1"])
    report = await reconcile_once(Clients(world), factory(store), repos=TARGETS)
    assert report.checked == [f"{REPO}#2"]
    assert report.skipped == [f"{REPO}#1: a delivery for it is still queued"]


async def test_passes_are_idempotent(world: World) -> None:
    world.open_prs += [pr(1, "1" * 40), world.promotion(7, "7" * 40, "gitops-bot/promote/prod/abcdef0")]
    world.merged.append({**pr(5, "d" * 40), "state": "closed", "merged": True})
    clients = Clients(world)
    first = await reconcile_once(clients, factory(world.store), repos=TARGETS)
    writes_after_first = len(clients.writes())
    checks_after_first = world.names().count("run_pr_checks")
    second = await reconcile_once(clients, factory(world.store), repos=TARGETS)
    third = await reconcile_once(clients, factory(world.store), repos=TARGETS)
    assert first.checked == [f"{REPO}#1"]
    assert second.checked == third.checked == []
    assert second.up_to_date == third.up_to_date == 1
    assert len(clients.writes()) == writes_after_first == 1
    assert world.names().count("run_pr_checks") == checks_after_first == 1
    assert second.promotions_recovered == third.promotions_recovered == []


async def test_promotion_prs_get_their_gates_evaluated(world: World) -> None:
    world.open_prs += [
        world.promotion(8, "8" * 40, "gitops-bot/promote/staging/7654321"),
        world.promotion(9, "9" * 40, "gitops-bot/promote/staging/1234567"),
        pr(10, "a" * 40, ref="gitops-bot/promote/staging/0000000", labels=["gitops-bot/promotion"]),
    ]
    world.check_runs["a" * 40] = [{"name": "gitops-bot/validate", "status": "completed"}]
    report = await reconcile_once(Clients(world), factory(world.store), repos=TARGETS)
    assert report.promotions_evaluated == [f"{REPO}#8: gates pending", f"{REPO}#9: gates pending"]
    assert report.checked == [] and report.up_to_date == 1  # #10 only looks like one: a PR like any
    assert world.names() == ["reconcile_promotions", "evaluate_promotion", "evaluate_promotion"]
    assert world.upgrade_passes == [REPO]  # then the upgrade campaigns and the calendar


async def test_promotion_prs_evaluated_by_reconcile_promotions_are_not_evaluated_again(world: World) -> None:
    world.reconcile_evaluates = True
    world.open_prs += [
        {
            **world.promotion(8, "8" * 40, "gitops-bot/promote/staging/7654321"),
            "html_url": "https://github.com/acme/fleet/pull/8",
        },
        world.promotion(9, "9" * 40, "gitops-bot/promote/staging/1234567"),
    ]
    report = await reconcile_once(Clients(world), factory(world.store), repos=TARGETS)
    assert world.names() == ["reconcile_promotions"]
    assert report.promotions_evaluated == [
        f"{REPO}: #8: soak time pending (https://github.com/acme/fleet/pull/8)",
        f"{REPO}: #9: soak time pending (https://github.com/acme/fleet/pull/9)",
    ]
    assert report.promotions_recovered == report.needs_attention == []


async def test_a_promotion_that_needs_a_person_is_reported(world: World) -> None:
    world.merged.append({**pr(5, "d" * 40), "state": "closed", "merged": True})
    world.conflict = True
    report = await reconcile_once(Clients(world), factory(), repos=TARGETS)
    assert report.needs_attention == [f"{REPO}: #5 conflicts in clusters/staging/payments.yaml"]
    assert report.promotions_recovered == []
    assert "1 need attention" in report.summary()


async def test_one_broken_pr_does_not_stop_the_pass(world: World) -> None:
    world.open_prs += [pr(1, "1" * 40), pr(2, "2" * 40)]
    world.broken_prs.add(1)
    report = await reconcile_once(Clients(world), factory(), repos=TARGETS)
    assert report.checked == [f"{REPO}#2"]
    assert report.errors == [f"{REPO}#1: RuntimeError: render failed"]
    assert "reconcile_promotions" in world.names()


async def test_a_failing_repository_does_not_stop_the_others(world: World) -> None:
    class Flaky(Clients):
        async def installation_api(self, installation_id: int) -> gidgethub.abc.GitHubAPI:
            if installation_id == 1:
                raise RuntimeError("token refused for ghs_abcdefghijklmnopqrstu")
            return await super().installation_api(installation_id)

    world.open_prs.append(pr(1, "1" * 40))
    report = await reconcile_once(Flaky(world), factory(), repos=[RepoTarget("acme/other", 1), *TARGETS])
    assert report.repositories == [REPO]
    assert report.checked == [f"{REPO}#1"]
    [error] = report.errors
    assert error.startswith("acme/other: RuntimeError")
    assert "ghs_" not in error


async def test_stale_in_progress_check_counts_as_missing() -> None:
    now = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
    fresh = (now - timedelta(minutes=2)).isoformat()
    stale = (now - timedelta(hours=2)).isoformat()
    gh = FakeGitHub(
        {
            ("GET", f"{API}/commits/f/check-runs"): {
                "check_runs": [{"name": "gitops-bot", "status": "in_progress", "started_at": fresh}]
            },
            ("GET", f"{API}/commits/s/check-runs"): {
                "check_runs": [{"name": "gitops-bot", "status": "queued", "started_at": stale}]
            },
        }
    )
    assert await checked_at_head(gh, REPO, "f", now=now) is True
    assert await checked_at_head(gh, REPO, "s", now=now) is False


# --- which repositories -------------------------------------------------------------------------


def installation_payload(action: str, repos: Sequence[str], inst: int = 11) -> dict[str, Any]:
    return {"action": action, "installation": {"id": inst}, "repositories": [{"full_name": r} for r in repos]}


async def test_repositories_are_remembered_from_deliveries() -> None:
    store = StateStore()
    ctx = HandlerContext(repos=FakeRepoAccess(), store=store)
    gh = FakeGitHub()
    await remember_router.dispatch(
        make_event("installation", installation_payload("created", ["acme/a", "acme/b"])), gh, ctx
    )
    await remember_router.dispatch(
        make_event(
            "pull_request",
            {"action": "opened", "installation": {"id": 12}, "repository": {"full_name": "acme/c"}},
        ),
        gh,
        ctx,
    )
    await remember_router.dispatch(
        make_event(
            "installation_repositories",
            {
                "action": "removed",
                "installation": {"id": 11},
                "repositories_removed": [{"full_name": "acme/a"}],
                "repositories_added": [],
            },
        ),
        gh,
        ctx,
    )
    assert await known_repos(store) == {"acme/b": 11, "acme/c": 12}
    writes = store.writes
    await remember_router.dispatch(
        make_event("push", {"installation": {"id": 12}, "repository": {"full_name": "acme/c"}}), gh, ctx
    )
    assert store.writes == writes, "an unchanged list is not written again"
    await remember_repos_from_payload(store, "installation", installation_payload("deleted", []))
    assert await known_repos(store) == {"acme/c": 12}
    assert gh.calls == []


async def test_payload_without_installation_is_not_remembered() -> None:
    store = StateStore()
    await remember_repos_from_payload(store, "push", {"repository": {"full_name": "acme/x"}})
    assert store.state == {}


async def test_corrupt_state_starts_empty() -> None:
    store = StateStore()
    store.state[STATE_KEY] = "{not json"
    assert await known_repos(store) == {}


async def test_discovery_unions_remembered_and_configured_repositories(world: World) -> None:
    store = StateStore()
    store.state[STATE_KEY] = json.dumps({REPO: 11})
    world.empty_repos.append("acme/configured")
    clients = Clients(world)
    clients.app.responses[("GET", "/repos/acme/configured/installation")] = {"id": 21}
    clients.app.responses[("GET", "/repos/acme/not-installed/installation")] = (404, {"message": "Not Found"})
    settings = types.SimpleNamespace(reconcile_repositories=[REPO, "acme/configured", "acme/not-installed"])
    report = await reconcile_once(clients, factory(store, settings))
    assert report.repositories == ["acme/configured", REPO]
    assert clients.installations == [21, 11]
    assert [c.path for c in clients.app.calls] == [
        "/repos/acme/configured/installation",
        "/repos/acme/not-installed/installation",
    ]
    assert report.errors == [
        "acme/not-installed: the App is not installed there (404); "
        "install it or remove the repository from the reconciler's list"
    ]


# --- the loop -----------------------------------------------------------------------------------


async def test_loop_runs_at_start_and_stops_when_told(world: World) -> None:
    world.open_prs.append(pr(1, "1" * 40))
    store = StateStore()
    store.state[STATE_KEY] = json.dumps({REPO: 11})
    clients = Clients(world)
    stop = asyncio.Event()
    task = asyncio.create_task(run_reconciler(clients, factory(store), interval=0.01, stop=stop))
    for _ in range(500):
        if world.names().count("reconcile_promotions") >= 3:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert world.names().count("reconcile_promotions") >= 3
    assert world.names().count("run_pr_checks") == 1


async def test_loop_survives_a_failing_pass(world: World) -> None:
    class Broken(Clients):
        async def app_api(self) -> gidgethub.abc.GitHubAPI:
            self.installations.append(-1)
            raise RuntimeError("no key")

    clients = Broken(world)
    stop = asyncio.Event()
    settings = types.SimpleNamespace(reconcile_repositories=["acme/x"])
    task = asyncio.create_task(run_reconciler(clients, factory(None, settings), interval=0.01, stop=stop))
    for _ in range(500):
        if len(clients.installations) >= 2:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert len(clients.installations) >= 2, "the loop went on after the first pass failed"


async def test_cleanup_context_starts_and_stops_the_loop(world: World) -> None:
    store = StateStore()
    store.state[STATE_KEY] = json.dumps({REPO: 11})
    clients = Clients(world)
    app: dict[str, Any] = {"clients": clients, "ctx": factory(store)}
    context = reconciler_context(lambda a: a["clients"], lambda a: a["ctx"], interval=3600)
    gen = context(app)
    await gen.__anext__()
    for _ in range(500):
        if "reconcile_promotions" in world.names():
            break
        await asyncio.sleep(0.01)
    with pytest.raises(StopAsyncIteration):
        await gen.__anext__()
    assert world.names() == ["reconcile_promotions"]


async def test_remembering_never_breaks_a_delivery(caplog: pytest.LogCaptureFixture) -> None:
    class Down(StateStore):
        async def get_state(self, key: str) -> str | None:
            raise ConnectionError("database is down")

    ctx = HandlerContext(repos=FakeRepoAccess(), store=Down(), delivery_id="d-9")
    payload = {"installation": {"id": 1}, "repository": {"full_name": "acme/x"}}
    await remember_router.dispatch(make_event("push", payload), FakeGitHub(), ctx)
    assert "could not remember the repository of delivery d-9" in caplog.text


async def test_cleanup_context_without_clients_does_not_start() -> None:
    context = reconciler_context(lambda a: None, lambda a: factory(), interval=1)
    gen = context({})
    await gen.__anext__()
    with pytest.raises(StopAsyncIteration):
        await gen.__anext__()
