"""The demo's upgrade chapter: ``prod-use1`` upgraded blue/green through its traffic steps.

The real bot drives the campaign (``handlers/upgrades.py``: the tracking issue, a pull request
per step on ``env/prod``, soaks, the rollback); people play their part on the simulator: bob
turns upgrades on and starts the campaign with ``/upgrade``, bob and carol approve each step and
carol merges it, Flux and the smoke tests report through commit statuses on ``env/prod``. Green's smoke
tests fail once under 50% of the traffic: the bot opens the rollback to 10%, carol merges it,
bob retries, and the campaign goes on to 100% and the decommission of blue.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.domain.upgrades.campaign import Campaign, load_state
from bot.domain.upgrades.tracking import LABEL
from bot.git.files import git, read_file_at, rev_parse
from bot.sim.demo import HEALTH_CONTEXT, REPO, DemoWorld

BLUE, GREEN, TARGET = "prod-use1", "prod-use1-b", "1.35"
SMOKE = f"smoke/{GREEN}"
DNS_PATH = "platform/dns/shop.yaml"
DNS = f"""\
# The shop's public name, weighted across clusters by external-dns (Route 53 weighted records).
apiVersion: externaldns.k8s.io/v1alpha1
kind: DNSEndpoint
metadata:
  name: shop-{BLUE}
  namespace: shop
  annotations:
    external-dns.alpha.kubernetes.io/set-identifier: {BLUE}
    external-dns.alpha.kubernetes.io/aws-weight: "100"
spec:
  endpoints:
    - dnsName: shop.example.com
      recordType: CNAME
      targets: [shop.{BLUE}.example.com]
"""
UPGRADES = """
# Cluster upgrades as pull requests (docs/upgrades.md).
upgrades:
  max_open: 0  # the daily calendar opens nothing in the demo; bob starts the upgrade himself
  blue_green:
    steps: [10, 50, 100]
    soak: 1s  # 30m by default
    traffic:
      - path: platform/dns/shop.yaml
        preset: external-dns
"""


def with_upgrades(config: str) -> str:
    """The demo fleet's configuration with upgrades on and ``/upgrade`` among the enabled commands."""
    config = re.sub(r"(\n  enabled: \[[^\]\n]*)\]", r"\1, upgrade]", config, count=1)
    return config.rstrip("\n") + "\n" + UPGRADES


class UpgradeChapter:
    """What the chapter watches: the tracking issue, its campaign, the ``env/prod`` tip."""

    def __init__(self, world: DemoWorld) -> None:
        self.world = world
        self.full_name = REPO
        self.issue = 0
        self.said = 0

    def git_dir(self) -> Path:
        return Path(self.world.sim.world.repos[self.full_name].path)

    def tip(self) -> str:
        return rev_parse(self.git_dir(), "refs/heads/env/prod")

    def tracking_issue(self) -> int:
        """The bot's upgrade issue (the one with the label, opened by the App)."""
        issues = self.world.sim.world.issues.get(self.full_name, {})
        bot = self.world.sim.bot_login
        found = [i.number for i in issues.values() if LABEL in i.labels and i.user == bot]
        return min(found) if found else 0

    def campaign(self) -> Campaign | None:
        issue = self.world.sim.world.issues.get(self.full_name, {}).get(self.issue)
        return load_state(issue.body or "") if issue is not None else None

    def at(self, current: int, *phases: str) -> bool:
        c = self.campaign()
        return c is not None and c.current == current and c.phase in phases

    async def report(self, sha: str, context: str, state: str) -> None:
        """Flux or the smoke tests report on a commit of ``env/prod`` (as their controllers do)."""
        await self.world.driver.api(
            "bob", "POST", f"/repos/{self.full_name}/statuses/{sha}", {"state": state, "context": context}
        )

    def show_bot(self) -> None:
        """Print what the bot said on the tracking issue since last time (one line per sentence)."""
        comments = self.world.driver.comments(self.full_name, self.issue)
        for author, body in comments[self.said :]:
            if not author.endswith("[bot]"):
                continue
            for line in body.strip().splitlines():
                if line.strip() and not line.startswith("<!--"):
                    self.world.out(f"  │ {line.strip()}")
        self.said = len(comments)

    def show_pr(self, number: int) -> None:
        pr = self.world.pr(number)
        files = git(self.git_dir(), "diff", "--name-status", f"refs/heads/{pr.base_ref}...{pr.head_sha}")
        changed = ", ".join(
            f"{parts[1]} ({ {'A': 'added', 'D': 'removed'}.get(parts[0], 'changed') })"
            for parts in (line.split("\t") for line in files.decode().splitlines())
        )
        self.world.out(f"  PR #{number} into {pr.base_ref}: {pr.title}")
        self.world.out(f"      {changed}")

    async def merge_step(self, number: int, *, smoke: str | None = None) -> None:
        """bob (platform) and carol (SRE) approve, carol merges; Flux reports both clusters healthy at
        the new tip (after the smoke tests' verdict, when they run again)."""
        d = self.world.driver
        await d.approve("bob", self.full_name, number)
        await d.approve("carol", self.full_name, number, "SRE approves this step.")
        await d.merge("carol", self.full_name, number, "merge")
        tip = self.tip()
        if smoke is not None:
            await self.report(tip, SMOKE, smoke)
        await self.report(tip, HEALTH_CONTEXT, "success")

    def weights(self) -> str:
        text = read_file_at(self.git_dir(), "refs/heads/env/prod", DNS_PATH) or ""
        ids = re.findall(r"set-identifier: (\S+)", text)
        weights = re.findall(r'aws-weight: "?(\d+)', text)
        return ", ".join(f"{c} {w}%" for c, w in zip(ids, weights, strict=False)) or "none"


async def play_upgrade(world: DemoWorld) -> dict[str, Any]:
    """Play the chapter; return what happened (the issue, every step PR, the rollback, the end state)."""
    d, out = world.driver, world.out
    ch = UpgradeChapter(world)
    result: dict[str, Any] = {"steps": []}
    world.heading(f"7. bob upgrades {BLUE} from 1.34 to {TARGET}, blue/green; a smoke test fails on the way")
    # The campaign reads its configuration on the default branch, the step files on env/prod.
    for branch in ("main", "env/prod"):
        config = read_file_at(ch.git_dir(), f"refs/heads/{branch}", ".github/gitops-bot.yml") or ""
        await d.push(
            "bob",
            REPO,
            branch,
            {".github/gitops-bot.yml": with_upgrades(config), DNS_PATH: DNS},
            message="Turn on cluster upgrades; weighted DNS for the shop",
        )
    out(f"bob turns upgrades on (.github/gitops-bot.yml) and puts the shop's DNS in {DNS_PATH}.")
    asked = await d.open_issue("bob", REPO, f"Upgrade {BLUE} to {TARGET}", "It runs 1.34.")
    await d.comment("bob", REPO, asked, f"/upgrade {BLUE} to {TARGET} blue-green")

    def started() -> bool:
        ch.issue = ch.tracking_issue()
        return ch.at(0, "merging")

    await world.until(started, "the tracking issue")
    result["issue"] = ch.issue
    c = ch.campaign()
    if c is None or c.pr is None:
        return result
    for author, body in d.comments(REPO, asked):
        if author.endswith("[bot]"):
            answer = [line for line in body.strip().splitlines() if line.strip() and "<!--" not in line]
            out(f"  ── gitops-bot on #{asked}: {answer[-1] if answer else ''}")
    tracking = world.sim.world.issues[REPO][ch.issue]
    out(f"Tracking issue #{ch.issue}: {tracking.title}")
    for line in (tracking.body or "").splitlines():
        if line.startswith("- ["):
            out(f"  {line}")

    async def step(current: int, *, smoke: str | None = None, then: tuple[int, str] | None = None) -> bool:
        """Merge the current step's PR and wait until the campaign reaches ``then``."""
        c = ch.campaign()
        if c is None or c.pr is None:
            return False
        result["steps"].append(c.pr)
        ch.show_pr(c.pr)
        await ch.merge_step(c.pr, smoke=smoke)
        nxt = then or (current + 1, "merging")
        done = await world.until(lambda: ch.at(*nxt), "the next step")
        ch.show_bot()
        return done

    ch.said = 0
    if not await step(0, then=(1, "smoke")):
        return result
    out(f"The smoke tests pass on {GREEN} (status {SMOKE}):")
    await ch.report(ch.tip(), SMOKE, "success")
    await world.until(lambda: ch.at(2, "merging"), "the first traffic step")
    ch.show_bot()
    if not await step(2):
        return result
    out(f"  DNS weights on env/prod: {ch.weights()}")
    out(f"Under 50% of the traffic, {GREEN}'s smoke tests fail:")
    if not await step(3, smoke="failure", then=(3, "rolling-back")):
        return result
    c = ch.campaign()
    if c is None or c.rollback_pr is None:
        return result
    result["rollback"] = c.rollback_pr
    ch.show_pr(c.rollback_pr)
    await d.merge("carol", REPO, c.rollback_pr, "merge")
    await ch.report(ch.tip(), HEALTH_CONTEXT, "success")
    await world.until(lambda: ch.at(3, "paused"), "the pause after the rollback")
    ch.show_bot()
    out(f"  DNS weights on env/prod: {ch.weights()}")
    out(f"The team fixes {GREEN}'s ingress; bob retries on the tracking issue:")
    await d.comment("bob", REPO, ch.issue, f"/upgrade {BLUE}")
    await world.until(lambda: ch.at(3, "merging"), "the retried step")
    ch.show_bot()
    if not await step(3, smoke="success"):
        return result
    for current in (4, 5):
        if not await step(current):
            return result
    if not await step(6, then=(7, "done")):
        return result
    tracking = world.sim.world.issues[REPO][ch.issue]
    out(f"Tracking issue #{ch.issue} is {tracking.state}:")
    for line in (tracking.body or "").splitlines():
        if line.startswith("- ["):
            out(f"  {line}")
    out(f"  DNS weights on env/prod: {ch.weights()}")
    requests = {
        name: read_file_at(ch.git_dir(), "refs/heads/env/prod", f"clusters/prod/{name}/cluster.yaml")
        for name in (BLUE, GREEN)
    }
    version = re.search(r'version: "?([\d.]+)', requests[GREEN] or "")
    out(
        f"  env/prod: {GREEN} requested at {version.group(1) if version else '?'}; "
        f"{BLUE}'s request {'removed' if requests[BLUE] is None else 'still there'}."
    )

    # main's registry still names blue: the bot's follow-up PR swaps it; bob (platform-admins) merges
    def registry_pr() -> int | None:
        return next(
            (
                p.number
                for p in world.sim.world.pulls[REPO].values()
                if p.base_ref == "main" and p.head_ref.startswith("gitops-bot/upgrade/")
            ),
            None,
        )

    await world.until(lambda: registry_pr() is not None, "the registry follow-up")
    number = registry_pr()
    assert number is not None
    ch.show_pr(number)
    await d.approve("bob", REPO, number)
    await d.approve("dave", REPO, number)
    await d.merge("bob", REPO, number, "merge")
    await world.settle()
    out(f"bob merges #{number}: main's registry names {GREEN} now.")
    result["registry_pr"] = number
    result["phase"] = "done"
    result["tracking_state"] = tracking.state
    return result
