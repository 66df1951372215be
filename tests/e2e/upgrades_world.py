"""A small fleet for upgrade campaigns on the simulator, and people who drive them.

``example-org/fleet`` holds one production cluster request (``shop-a``, an ACK ``Cluster`` with a
kube-proxy ``Addon``), its registry entry, the external-dns weighted record of ``shop.example.com``
and a config whose ``upgrades`` section runs blue/green by steps of 10, 50 and 100 with no soak
(the simulator has no clock to move, so soaks are zero and gating is shown by health instead).
The hub's Flux ``Kustomization`` applies ``clusters/prod``, so the bot renders the requests and
sees a removed one as dangerous.
A ``when: dangerous`` approval rule names ``sre-lead``; commits to ``clusters/prod`` must be signed
(the bot's own step commits pass as the bot's, by its record). Flux and the smoke tests are played by
``bob`` posting commit statuses on ``env/prod``'s tip.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.domain.upgrades.campaign import Campaign, load_state
from bot.domain.upgrades.edits import load_all
from bot.domain.upgrades.tracking import LABEL, STEP_BRANCH_PREFIX
from bot.git.files import read_file_at, rev_parse
from bot.sim.driver import Driver
from bot.sim.state import Issue, PullRequest
from tests.upgrades.test_campaign_github import CONFIG as CAMPAIGN_CONFIG
from tests.upgrades.test_campaign_github import REQUEST as CAMPAIGN_REQUEST
from tests.upgrades.test_edits import DNS

REPO = "example-org/fleet"
BOT = "gitops-bot[bot]"
PEOPLE = {"alice": "write", "bob": "maintain", "sre-lead": "write", "mallory": "read"}

CONFIG = (
    CAMPAIGN_CONFIG.replace(
        "clusters:\n",
        "clusters:\n  - name: hub\n    env: mgmt\n    region: us-east-1\n    path: clusters/mgmt/hub\n",
    )
    .replace(
        "environments:\n",
        "approvals:\n  codeowners: false\n  rules:\n    - name: destroys\n      when: dangerous\n"
        "      require: {count: 1, users: [sre-lead]}\n"
        "signatures:\n  trust: github\n  overrides:\n"
        "    - paths: ['clusters/prod/**']\n      required: true\n"
        "environments:\n",
    )
    .replace("strategy: blue-green", "strategy: {strategy}")
)

REQUEST = CAMPAIGN_REQUEST.replace(
    "  # bumped by upgrades\n",
    "  # bumped by upgrades\n  roleARN: arn:aws:iam::111122223333:role/eks-cluster\n  resourcesVPCConfig:\n"
    "    subnetIDs: [subnet-0a1e5c1a2b3c4d5e6, subnet-0b1e5c1a2b3c4d5e6, subnet-0c1e5c1a2b3c4d5e6]\n",
).replace("addonVersion: v1.32.13-eksbuild.5", "addonVersion: {addon}")
"""shop-a's request: an ACK ``Cluster`` (with the fields ACK requires) and its kube-proxy ``Addon``."""

ADDONS = {"1.32": "v1.32.13-eksbuild.5", "1.33": "v1.33.10-eksbuild.2"}

HUB = """\
# The management cluster's Flux applies every production cluster request (ACK creates them).
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: cluster-requests
  namespace: flux-system
spec:
  interval: 10m
  path: ./clusters/prod
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
"""


def fleet_files(version: str, strategy: str) -> dict[str, str | None]:
    return {
        ".github/gitops-bot.yml": CONFIG.replace("{strategy}", strategy),
        "clusters/mgmt/hub/cluster-requests.yaml": HUB,
        "clusters/prod/shop-a/cluster.yaml": REQUEST.replace("{version}", version).replace(
            "{addon}", ADDONS[version]
        ),
        "platform/dns/shop.yaml": DNS,
    }


async def setup_fleet(d: Driver, version: str, strategy: str) -> None:
    """People, the organisation, the App installed, the fleet on ``main`` and ``env/prod``."""
    for login in PEOPLE:
        d.user(login, email=f"{login}@example.com")
    d.org("example-org", members=list(PEOPLE))
    d.repo(REPO, collaborators=dict(PEOPLE))
    d.install("example-org")
    files = fleet_files(version, strategy)
    for branch in ("main", "env/prod"):
        await d.push("bob", REPO, branch, dict(files), message="The fleet", base=None)


@dataclass
class Upgrades:
    """What people see of a campaign on the simulator, and what they do to it."""

    d: Driver
    settle: Callable[[], Any]

    @property
    def sim(self) -> Any:
        return self.d.sim

    # ------------------------------------------------------------------ what is there
    def issues(self) -> list[Issue]:
        """The bot's upgrade issues, oldest first."""
        found = self.sim.world.issues.get(REPO, {}).values()
        return sorted((i for i in found if i.user == BOT and LABEL in i.labels), key=lambda i: i.number)

    def issue(self) -> Issue:
        [issue] = self.issues()
        return issue

    def campaign(self) -> Campaign | None:
        issues = self.issues()
        return load_state(issues[0].body or "") if len(issues) == 1 else None

    def steps_prs(self) -> list[PullRequest]:
        """Every pull request on a bot upgrade branch into ``env/prod``, oldest first."""
        prs = self.sim.world.pulls.get(REPO, {}).values()
        return sorted(
            (p for p in prs if p.head_ref.startswith(STEP_BRANCH_PREFIX) and p.base_ref == "env/prod"),
            key=lambda p: p.number,
        )

    def registry_prs(self) -> list[PullRequest]:
        """The bot's follow-up PRs on ``main`` (its registry, after a blue/green campaign)."""
        prs = self.sim.world.pulls.get(REPO, {}).values()
        return [p for p in prs if p.head_ref.startswith(STEP_BRANCH_PREFIX) and p.base_ref == "main"]

    def open_step(self) -> PullRequest | None:
        c = self.campaign()
        if c is None or c.phase != "merging" or not c.pr:
            return None
        pr: PullRequest | None = self.sim.world.pulls[REPO].get(c.pr)
        return pr if pr is not None and pr.state == "open" else None

    def merging(self, number: int) -> bool:
        c = self.campaign()
        return c is not None and c.phase == "merging" and c.pr == number

    def tip(self, branch: str = "env/prod") -> str:
        return rev_parse(self.sim.world.repos[REPO].path, f"refs/heads/{branch}")

    def file(self, path: str, branch: str = "env/prod") -> str | None:
        return read_file_at(self.sim.world.repos[REPO].path, f"refs/heads/{branch}", path)

    def weights(self) -> dict[str, int]:
        key = "external-dns.alpha.kubernetes.io/"
        return {
            doc["metadata"]["annotations"][f"{key}set-identifier"]: int(
                doc["metadata"]["annotations"][f"{key}aws-weight"]
            )
            for doc in load_all(self.file("platform/dns/shop.yaml") or "")
        }

    def bot_comments(self, number: int) -> list[str]:
        return [body for who, body in self.d.comments(REPO, number) if who == BOT]

    def checks(self, number: int) -> dict[str, dict[str, Any]]:
        return {run["name"]: run for run in self.d.check_runs(REPO, number)}

    # ------------------------------------------------------------------ what people do
    async def report(self, *, red: tuple[str, ...] = (), smoke: str | None = "success") -> None:
        """Flux reports both clusters' health, the smoke tests (unless None) green's, on the tip."""
        tip = self.tip()
        for cluster in ("shop-a", "shop-b"):
            state = "failure" if cluster in red else "success"
            await self.status(tip, f"health/{cluster}", state)
        if smoke is not None:
            await self.status(tip, "smoke/shop-b", smoke)

    async def status(self, sha: str, context: str, state: str) -> None:
        await self.d.api("bob", "POST", f"/repos/{REPO}/statuses/{sha}", {"state": state, "context": context})

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                prs = [(p.number, p.state, p.merged, p.head_sha[:8]) for p in self.steps_prs()]
                said = [b[:200] for i in self.issues() for b in self.d.comments(REPO, i.number)]
                allprs = [(p.number, p.head_ref, p.state) for p in self.sim.world.pulls[REPO].values()]
                said.append(str(allprs))
                raise AssertionError(
                    f"gave up waiting for {what}; {self.campaign()}; PRs: {prs}; said: {said}"
                )
            await self.settle()
            await asyncio.sleep(0.2)

    async def merge_step(self, pr: PullRequest) -> None:
        """bob merges a step PR once the bot's checks on its head finished."""
        await self.until(lambda: self._checked(pr), f"the checks of #{pr.number}", timeout=90)
        await self.d.merge("bob", REPO, pr.number)

    def _checked(self, pr: PullRequest) -> bool:
        runs = self.checks(pr.number)
        return "gitops-bot/validate" in runs and all(r["status"] == "completed" for r in runs.values())

    async def drive(
        self,
        stop: Callable[[Campaign], bool],
        *,
        on_pr: Callable[[PullRequest], Any] | None = None,
        smoke: str | None = "success",
        timeout: float = 240.0,
    ) -> list[PullRequest]:
        """Merge each step PR, report green, let the reconciler pass, until ``stop(campaign)``."""
        merged: list[PullRequest] = []
        deadline = time.monotonic() + timeout
        seen: list[tuple[int, str]] = []
        while True:
            c = self.campaign()
            assert c is not None, "no campaign"
            seen.append((c.current, c.phase))
            if stop(c):
                return merged
            assert c.phase not in ("paused", "done"), (c.phase, c.reason, seen)
            assert time.monotonic() < deadline, f"campaign stuck: {c}"
            pr = self.open_step()
            if pr is not None:
                if on_pr is not None:
                    await on_pr(pr)
                await self.merge_step(pr)
                merged.append(pr)
                number = pr.number
                await self.until(lambda n=number: not self.merging(n), f"#{number} merged")
                continue  # soaking now: look at ``stop`` before Flux reports
            await self.report(smoke=smoke)
            await self.until(lambda c=c: self.campaign() != c, "the campaign to move on", timeout=30)
