"""Campaigns driven through the handler against a stateful fake GitHub backed by a real bare repository.

The step PRs are real commits on real branches, merged with real merges; the tracking issue's
body carries the state from one pass to the next. Covers a whole blue/green campaign, one with
a red traffic step and its rollback, a three-hop in-place upgrade, redelivery (a pass run twice
does nothing twice) and a person's marker being ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.domain.upgrades.campaign import Campaign, load_state
from bot.domain.upgrades.command import UpgradeRequest
from bot.domain.upgrades.edits import load_all
from bot.service.context import HandlerContext
from handlers import upgrades
from tests.support.github import FakeGitHub, make_event
from tests.support.gitrepo import GitRepo
from tests.support.repos import FakeRepoAccess
from tests.upgrades.test_edits import ADDON, ARGO, DNS
from tests.upgrades.test_edits import REQUEST as CLUSTER

BOT = "gitops-bot[bot]"
TODAY = date(2026, 12, 3)

CONFIG = """\
version: 1
clusters:
  - name: shop-a
    env: prod
    region: us-east-1
    path: clusters/prod/shop-a
environments:
  - name: prod
    branch: env/prod
    gates:
      health: {contexts: ["health/{cluster}"]}
      soak: 0s
promotion:
  rollback_on_red: true
upgrades:
  strategy: blue-green
  max_open: 2
  min_role: {prod: maintain}
  blue_green:
    steps: [10, 50, 100]
    soak: 0s
    traffic:
      - path: platform/dns/shop.yaml
        preset: external-dns
"""

REQUEST = (
    CLUSTER.replace('version: "1.33"', 'version: "{version}"')
    + "---\n"
    + ADDON.replace("v1.33.10-eksbuild.2", "v1.32.13-eksbuild.5")
)


@dataclass
class World:
    gh: FakeGitHub
    repo: GitRepo
    ctx: HandlerContext

    @property
    def issue(self) -> dict[str, Any]:
        [issue] = [i for i in self.gh.issues.values() if i["user"]["type"] == "Bot"]
        return issue

    @property
    def campaign(self) -> Campaign:
        c = load_state(self.issue["body"])
        assert c is not None
        return c

    def file(self, path: str, branch: str = "env/prod") -> str | None:
        return self.repo.read(f"refs/heads/{branch}", path)

    def weights(self) -> dict[str, int]:
        text = self.file("platform/dns/shop.yaml") or ""
        return {
            d["metadata"]["annotations"]["external-dns.alpha.kubernetes.io/set-identifier"]: int(
                d["metadata"]["annotations"]["external-dns.alpha.kubernetes.io/aws-weight"]
            )
            for d in load_all(text)
        }

    def report(self, *, red: tuple[str, ...] = (), smoke: str = "success") -> None:
        """Flux and the smoke tests report on the env branch's tip."""
        tip = self.gh.head_sha("env/prod")
        for cluster in ("shop-a", "shop-b"):
            self.gh.set_status(tip, f"health/{cluster}", "failure" if cluster in red else "success")
        self.gh.set_status(tip, "smoke/shop-b", smoke)

    def open_step(self) -> dict[str, Any] | None:
        c = self.campaign
        return self.gh.pulls.get(c.pr) if c.pr and c.phase == "merging" else None

    async def advance(self) -> Campaign | None:
        return await upgrades.advance(self.gh, self.ctx, self.gh.full_name, self.issue["number"])

    async def drive(self, *, until: str = "done", limit: int = 40) -> list[str]:
        """People merge each step PR; Flux and smoke report green; the reconciler passes."""
        seen = []
        for _ in range(limit):
            c = self.campaign
            if c.phase == until or c.phase in ("paused", "done"):
                break
            pr = self.open_step()
            if pr is not None and pr["state"] == "open":
                seen.append(pr["title"])
                self.gh.merge_pr(pr["number"])
            self.report()
            await self.advance()
        return seen


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path, "1.33")


def make_world(tmp_path: Path, version: str, config: str = CONFIG) -> World:
    repo = GitRepo(tmp_path / "remote.git", bare=True)
    files: dict[str, str | None] = {
        ".github/gitops-bot.yml": config,
        "clusters/prod/shop-a/cluster.yaml": REQUEST.replace("{version}", version),
        "platform/dns/shop.yaml": DNS,
    }
    repo.commit_on("main", files, "The fleet")
    repo.git("update-ref", "refs/heads/env/prod", repo.sha("refs/heads/main"))
    gh = FakeGitHub(repo=repo, permissions={"bob": "maintain", "alice": "write"})
    ctx = HandlerContext(
        repos=FakeRepoAccess(remote=repo.path, mirror=tmp_path / "mirror.git"), bot_login=BOT
    )
    return World(gh, repo, ctx)


async def start(w: World, text: str, user: str = "bob") -> upgrades.UpgradeOutcome:
    request = UpgradeRequest(*text.split())  # cluster, target, strategy
    return await upgrades.start_upgrade(
        w.gh, w.ctx, repo=w.gh.full_name, request=request, user=user, today=TODAY
    )


@pytest.mark.slow
async def test_whole_blue_green_campaign(world: World) -> None:
    w = world
    outcome = await start(w, "shop-a 1.35 blue-green")
    assert outcome.ok, outcome.message
    assert w.campaign.phase == "merging" and w.campaign.head_sha == w.gh.pulls[w.campaign.pr]["head"]["sha"]
    titles = await w.drive()
    assert [t.split(": ", 1)[1] for t in titles] == [s.title for s in w.campaign.steps if s.kind != "smoke"]
    assert w.campaign.phase == "done" and w.issue["state"] == "closed"
    assert w.file("clusters/prod/shop-a/cluster.yaml") is None  # blue's request removed last
    green = w.file("clusters/prod/shop-b/cluster.yaml") or ""
    assert 'version: "1.35"  # bumped by upgrades' in green and "name: shop-b" in green
    assert w.weights() == {"shop-b": 100}
    config = w.file(".github/gitops-bot.yml") or ""
    assert "name: shop-b" in config and "name: shop-a" not in config
    assert all(p["user"]["login"] == BOT for p in w.gh.pulls.values())
    assert "- [x] Shift traffic: shop-b 100%, shop-a 0%" in w.issue["body"]


@pytest.mark.slow
async def test_red_traffic_step_rolls_back_then_retry_finishes(world: World) -> None:
    w = world
    await start(w, "shop-a 1.35 blue-green")
    await w.drive(until="soaking", limit=12)
    while not (w.campaign.step and w.campaign.step.weight == 50 and w.campaign.phase == "soaking"):
        await w.drive(until="soaking", limit=1)
        if w.campaign.phase == "soaking" and w.campaign.step and w.campaign.step.weight != 50:
            w.report()
            await w.advance()
    assert w.weights() == {"shop-a": 50, "shop-b": 50}
    w.report(red=("shop-b",))
    await w.advance()  # red during a traffic step: the bot opens the rollback and merges it
    assert w.campaign.phase == "rolling-back"
    rollback = w.gh.pulls[w.campaign.rollback_pr or 0]
    assert rollback["merged"] and w.weights() == {"shop-a": 90, "shop-b": 10}
    await w.advance()
    assert w.campaign.phase == "paused" and "shop-b turned red" in w.campaign.reason
    await w.advance()  # paused: nothing more happens
    assert w.campaign.phase == "paused"
    again = await start(w, "shop-a 1.35 blue-green")  # /upgrade resumes the paused campaign
    assert again.ok and "Resumed" in again.message
    await w.drive()
    assert w.campaign.phase == "done" and w.weights() == {"shop-b": 100}


async def test_traffic_objects_come_from_the_campaigns_config_not_the_env_branch_copy(tmp_path: Path) -> None:
    w = make_world(tmp_path, "1.33")
    # env/prod's copy of the configuration lost its traffic list; main's (the campaign's) has it
    stale = CONFIG.split("    traffic:\n")[0]
    w.repo.commit_on("env/prod", {".github/gitops-bot.yml": stale}, "A stale copy")
    await start(w, "shop-a 1.35 blue-green")
    for _ in range(12):
        if w.campaign.phase == "paused" or w.weights().get("shop-b") == 10:
            break
        await w.drive(limit=1)
    assert w.campaign.phase != "paused", w.campaign.reason
    assert w.weights() == {"shop-a": 90, "shop-b": 10}


async def test_green_starts_on_the_add_on_versions_aws_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``eks.online: true``: the calendar and the add-on versions come from AWS (here AWS refuses
    describe_cluster_versions, so the bundled calendar stands, and answers describe_addon_versions)."""
    import boto3
    from botocore.stub import Stubber

    from bot.aws import eks as eks_aws

    client = boto3.client("eks", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    compat = [{"clusterVersion": "1.35", "defaultVersion": True}]
    found = {
        "addonName": "kube-proxy",
        "addonVersions": [{"addonVersion": "v1.35.0-eksbuild.9", "compatibilities": compat}],
    }
    w = make_world(tmp_path, "1.33", CONFIG + "eks:\n  online: true\n")
    monkeypatch.setattr(eks_aws, "session_for", lambda config: client if eks_aws.online(config) else None)
    eks_aws.clear_cache()
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "describe_cluster_versions", "AccessDeniedException", "no", http_status_code=403
        )
        stubber.add_response(
            "describe_addon_versions",
            {"addons": [found]},
            {"kubernetesVersion": "1.35", "addonName": "kube-proxy"},
        )
        await start(w, "shop-a 1.35 blue-green")
        stubber.assert_no_pending_responses()
    assert ("kube-proxy", "1.35", "v1.35.0-eksbuild.9") in w.campaign.addons
    head = w.gh.pulls[w.campaign.pr or 0]["head"]["sha"]
    assert "addonVersion: v1.35.0-eksbuild.9" in (
        w.repo.read(head, "clusters/prod/shop-b/cluster.yaml") or ""
    )
    assert "from AWS (describe_addon_versions)" in w.issue["body"]


async def test_green_is_registered_with_argo_cd_beside_blue(tmp_path: Path) -> None:
    w = make_world(tmp_path, "1.33")
    w.repo.commit_on("env/prod", {"platform/argocd/clusters.yaml": ARGO}, "Argo CD knows shop-a")
    await start(w, "shop-a 1.35 blue-green")
    head = w.gh.pulls[w.campaign.pr or 0]["head"]["sha"]
    docs = load_all(w.repo.read(head, "platform/argocd/clusters.yaml") or "")
    assert [d["stringData"]["name"] for d in docs] == ["shop-a", "shop-b"]


async def test_second_upgrade_links_the_first_and_roles_are_checked(world: World) -> None:
    w = world
    denied = await start(w, "shop-a 1.35 blue-green", user="alice")
    assert not denied.ok and "*maintain*" in denied.message and not w.gh.issues
    first = await start(w, "shop-a 1.35 blue-green")
    second = await start(w, "shop-a 1.34 in-place")
    assert not second.ok and w.issue["html_url"] in second.message and first.url == w.issue["html_url"]
    assert len(w.gh.issues) == 1 and len(w.gh.pulls) == 1


async def test_redelivery_does_nothing_twice_and_a_persons_marker_is_ignored(world: World) -> None:
    w = world
    await start(w, "shop-a 1.35 blue-green")
    before = (dict(w.gh.pulls), w.issue["body"], len(w.gh.comments))
    await w.advance()
    await w.advance()  # the same facts twice: no new PR, no new comment, the same body
    assert (dict(w.gh.pulls), w.issue["body"], len(w.gh.comments)) == before
    forged = w.gh.new_issue(
        w.issue["body"].replace('"phase":"merging"', '"phase":"done"'), user="mallory", kind="User"
    )
    assert await upgrades.advance(w.gh, w.ctx, w.gh.full_name, forged["number"]) is None
    found = await upgrades.tracked_issues(w.gh, w.ctx, w.gh.full_name)
    assert [t.number for t in found] == [w.issue["number"]]


async def test_a_push_by_someone_else_loses_the_step_pr(world: World) -> None:
    w = world
    await start(w, "shop-a 1.35 blue-green")
    pr = w.gh.pulls[w.campaign.pr or 0]
    w.repo.commit_on(pr["head"]["ref"], {"extra.yaml": "a: 1\n"}, "mallory was here", author="Mallory")
    w.report()
    await w.advance()  # provenance: the head is not the bot's any more, the step is opened again
    c = w.campaign
    assert c.pr == pr["number"] and c.head_sha == w.gh.pulls[pr["number"]]["head"]["sha"]


@pytest.mark.slow
async def test_three_hop_in_place_upgrade(tmp_path: Path) -> None:
    w = make_world(tmp_path, "1.32", CONFIG.replace("strategy: blue-green", "strategy: in-place"))
    outcome = await start(w, "shop-a 1.35")
    assert outcome.ok, outcome.message
    titles = await w.drive()
    assert w.campaign.phase == "done", w.campaign
    # ACK manages shop-a's add-on (auto): each hop is a PR for the control plane, then one for the
    # add-ons, opened after the control plane's soaked healthy
    assert [t.split(": ", 1)[1] for t in titles] == [
        f"{part} {v}" for v in ("1.33", "1.34", "1.35") for part in ("Control plane to", "Add-ons for")
    ]
    request = w.file("clusters/prod/shop-a/cluster.yaml") or ""
    assert 'version: "1.35"  # bumped by upgrades' in request
    assert "addonVersion: v1.35.3-eksbuild.2" in request


async def test_calendar_opens_one_issue_per_due_cluster_and_never_reopens(tmp_path: Path) -> None:
    w = make_world(tmp_path, "1.30")
    opened = await upgrades.calendar_pass(w.gh, w.ctx, w.gh.full_name, today=TODAY)
    assert len(opened) == 1
    issue = w.gh.issues[opened[0]]
    assert "EKS standard support for 1.30" in issue["body"] and "`/upgrade shop-a`" in issue["body"]
    assert not w.gh.pulls  # auto_open is off: the plan only
    assert await upgrades.calendar_pass(w.gh, w.ctx, w.gh.full_name, today=TODAY) == []
    issue["state"] = "closed"  # a person said no
    assert await upgrades.calendar_pass(w.gh, w.ctx, w.gh.full_name, today=TODAY) == []
    assert len(w.gh.issues) == 1


async def test_a_merged_step_pr_moves_its_campaign_on_at_once(world: World) -> None:
    w = world
    await start(w, "shop-a 1.35 blue-green")
    pr = w.gh.merge_pr(w.campaign.pr or 0)
    event = make_event(
        "pull_request", {"action": "closed", "pull_request": pr, "repository": {"full_name": w.gh.full_name}}
    )
    await upgrades.router.dispatch(event, w.gh, w.ctx)
    assert w.campaign.phase == "soaking"
    forged = {**pr, "user": {"login": "mallory", "type": "User"}}
    before = len(w.gh.calls)
    event = make_event(
        "pull_request",
        {"action": "closed", "pull_request": forged, "repository": {"full_name": w.gh.full_name}},
    )
    await upgrades.router.dispatch(event, w.gh, w.ctx)
    assert len(w.gh.calls) == before  # a person's PR on a look-alike branch is not a step


async def test_the_reconciler_pass_drives_campaigns_and_is_off_without_the_section(tmp_path: Path) -> None:
    w = make_world(tmp_path, "1.33")
    await start(w, "shop-a 1.35 blue-green")
    w.gh.merge_pr(w.campaign.pr or 0)
    assert await upgrades.reconcile_upgrades(w.gh, w.ctx, w.gh.full_name) == []
    assert w.campaign.phase == "soaking"
    off = make_world(tmp_path / "off", "1.30", CONFIG.split("upgrades:")[0])
    assert await upgrades.reconcile_upgrades(off.gh, off.ctx, off.gh.full_name) == []
    assert not [c for c in off.gh.calls if "/issues" in c.path]
    refused = await start(off, "shop-a 1.35")
    assert not refused.ok and "add an `upgrades:` section" in refused.message


class Crash(Exception):
    """The process dies here (a SIGKILL between two writes)."""


@pytest.mark.parametrize("dies_at", ["push", "open", "label", "save", "say"])
async def test_a_crash_between_any_two_writes_loses_no_step_and_does_none_twice(
    world: World, dies_at: str
) -> None:
    w = world
    await start(w, "shop-a 1.35 blue-green")
    w.gh.merge_pr(w.campaign.pr or 0)
    w.report()
    await w.advance()  # soaking
    w.report()
    await w.advance()  # smoke
    assert w.campaign.phase == "smoke"
    w.report()
    route, push = w.gh._route, w.ctx.repos.push
    where = {
        "open": ("POST", f"/repos/{w.gh.full_name}/pulls"),
        "label": ("POST", f"/repos/{w.gh.full_name}/issues/2/labels"),
        "save": ("PATCH", f"/repos/{w.gh.full_name}/issues/{w.issue['number']}"),
        "say": ("POST", f"/repos/{w.gh.full_name}/issues/{w.issue['number']}/comments"),
    }

    def dying(method: str, path: str, q: dict[str, str], data: Any) -> tuple[int, Any] | None:
        if (method, path) == where.get(dies_at):
            w.gh._route = route  # type: ignore[method-assign]
            if dies_at != "open":
                route(method, path, q, data)  # the write landed, the process died before the answer
            raise Crash(dies_at)
        return route(method, path, q, data)

    async def dying_push(full_name: str, refspecs: Any, *, force: bool = False) -> None:
        w.ctx.repos.push = push  # type: ignore[method-assign]
        raise Crash("push")

    w.gh._route = dying  # type: ignore[method-assign]
    if dies_at == "push":
        w.ctx.repos.push = dying_push  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await w.advance()  # smoke passed: open step 3 (traffic 10%)
    await w.advance()  # another replica (or the redelivery) carries on
    await w.advance()
    c = w.campaign
    traffic = [p for p in w.gh.pulls.values() if "10%" in p["title"]]
    assert len(traffic) == 1 and c.pr == traffic[0]["number"] and c.phase == "merging"
    assert c.head_sha == traffic[0]["head"]["sha"]
    opened = [m for m in w.gh.comments.values() if "Opened step 3" in m["body"]]
    assert len(opened) <= 1


async def test_a_hold_or_a_freeze_keeps_the_next_step_closed(tmp_path: Path) -> None:
    frozen = CONFIG.replace(
        "      soak: 0s\n",
        "      soak: 0s\n      freeze:\n        - {start: '2020-01-01', reason: change freeze}\n",
        1,
    )
    for config, label in ((CONFIG, True), (frozen, False)):
        w = make_world(tmp_path / str(label), "1.33", config)
        await start(w, "shop-a 1.35 blue-green")
        if label:
            w.gh.issues[w.issue["number"]]["labels"].append({"name": "gitops-bot/hold"})
        w.gh.merge_pr(w.campaign.pr or 0)
        for _ in range(3):
            w.report()
            await w.advance()
        assert w.campaign.phase == "soaking" and len(w.gh.pulls) == 1


async def test_hold_unhold_and_rollback_on_the_tracking_issue(world: World) -> None:
    w = world

    async def command(name: str) -> upgrades.UpgradeOutcome:
        number = w.issue["number"]
        return await upgrades.campaign_command(
            w.gh, w.ctx, repo=w.gh.full_name, issue_number=number, name=name, reason="<b>why</b>"
        )

    await start(w, "shop-a 1.35 blue-green")
    assert (await command("hold")).ok and {"name": "gitops-bot/hold"} in w.issue["labels"]
    assert (await command("unhold")).ok and {"name": "gitops-bot/hold"} not in w.issue["labels"]
    assert "not on hold" in (await command("unhold")).message
    await w.drive(until="soaking", limit=8)
    while w.campaign.step is None or w.campaign.step.weight != 10 or w.campaign.phase != "soaking":
        await w.drive(until="soaking", limit=1)
        if w.campaign.phase == "soaking" and w.campaign.step and w.campaign.step.weight is None:
            w.report()
            await w.advance()
    assert w.weights() == {"shop-a": 90, "shop-b": 10}
    answer = await command("rollback")
    assert answer.ok and w.campaign.phase == "rolling-back", answer.message
    assert w.gh.pulls[w.campaign.rollback_pr or 0]["merged"] and w.weights() == {"shop-a": 100, "shop-b": 0}
    assert "why" in w.campaign.reason and "<b>" not in w.campaign.reason and "<b>" not in w.issue["body"]
    assert "already rolling back" in (await command("rollback")).message
    await w.advance()
    assert w.campaign.phase == "paused"
    w.gh.issues[w.issue["number"]]["state"] = "closed"
    assert not (await command("hold")).ok  # a closed issue has no campaign under way


async def test_upgrade_on_the_calendars_issue_starts_the_campaign_there(tmp_path: Path) -> None:
    w = make_world(tmp_path, "1.30")
    [number] = await upgrades.calendar_pass(w.gh, w.ctx, w.gh.full_name, today=TODAY)
    outcome = await start(w, "shop-a 1.35 blue-green")
    assert outcome.ok and outcome.url == w.gh.issues[number]["html_url"] and len(w.gh.issues) == 1
    body = w.gh.issues[number]["body"]
    assert "EKS standard support for 1.30" in body and "started by @bob" in body
    assert w.campaign.target == "1.35" and w.campaign.pr and "blue/green" in w.gh.issues[number]["title"]


async def test_health_and_smoke_signals_move_a_campaign_at_once(world: World) -> None:
    w = world
    await start(w, "shop-a 1.35 blue-green")
    w.gh.merge_pr(w.campaign.pr or 0)
    await w.advance()
    assert w.campaign.phase == "soaking"
    w.report()
    tip = w.gh.head_sha("env/prod")

    async def signal(kind: str, body: dict[str, Any]) -> None:
        payload = {"action": "completed", **body, "repository": {"full_name": w.gh.full_name}}
        await upgrades.router.dispatch(make_event(kind, payload), w.gh, w.ctx)

    before = len(w.gh.calls)
    await signal("check_run", {"check_run": {"name": "ci/unit", "head_sha": tip, "app": {"slug": "ci"}}})
    ours = {"name": "health/shop-b", "head_sha": tip, "app": {"slug": "gitops-bot"}}
    await signal("check_run", {"check_run": ours})  # the bot's own runs are no signal
    assert w.campaign.phase == "soaking"
    assert not [c for c in w.gh.calls[before:] if "/issues" in c.path]  # not even a listing
    await signal(
        "check_run", {"check_run": {"name": "health/shop-b", "head_sha": tip, "app": {"slug": "flux"}}}
    )
    assert w.campaign.phase == "smoke"  # soaked healthy, at once
    await signal("check_suite", {"check_suite": {"head_sha": "0" * 40, "app": {"slug": "ci"}}})
    assert w.campaign.phase == "smoke"  # not the environment branch's tip
    await signal("check_suite", {"check_suite": {"head_sha": tip, "app": {"slug": "ci"}}})
    assert w.campaign.phase == "merging" and "10%" in w.gh.pulls[w.campaign.pr or 0]["title"]
