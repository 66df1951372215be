"""Full cluster-request lifecycles against ``python -m bot serve`` replicas and the simulator.

:class:`Fleet` starts the simulator with the demo's example fleet (``bot.sim.demo``), runs
the bot as real subprocesses (:class:`ServeProcess`), and plays one lifecycle per cluster:
push a good request, open the PR into ``env/dev``, wait for the checks, two approvals (bob,
dave), merge, Flux reports dev healthy, the bot merges the staging promotion itself and opens
the prod one. :meth:`Fleet.verify` then checks that nothing was lost and nothing done twice.
Waiting only looks at what GitHub (the simulator) shows, never inside the bot.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.queue import open_store
from bot.queue.base import Status
from bot.sim import Driver, Simulator
from bot.sim.demo import HEALTH_CONTEXT, REPO, cluster_request, setup_fleet
from bot.sim.driver import DriverError
from tests.hostile.serve_process import ServeProcess

PR_CHECKS = (
    "gitops-bot",
    "gitops-bot/diff",
    "gitops-bot/validate",
    "gitops-bot/signatures",
    "gitops-bot/approvals",
)
MARKER = re.compile(r"<!-- gitops-bot:(?P<key>[A-Za-z0-9_.:-]+?)(?: part (?P<n>\d+)/\d+)? -->")
RETRIED = (500, 502, 503, 429, 403)


class PatientDriver(Driver):
    """A person who retries when GitHub answers 5xx or rate-limits (faults never apply a write)."""

    async def api(
        self,
        login: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: int | tuple[int, ...] = (200, 201, 202, 204),
    ) -> Any:
        for attempt in range(30):
            try:
                return await super().api(login, method, path, body, expect=expect)
            except DriverError as exc:
                status = int(m.group(1)) if (m := re.search(r" answered (\d{3})", str(exc))) else 0
                if status not in RETRIED or attempt == 29:
                    raise
                await asyncio.sleep(0.05)
        raise AssertionError("unreachable")


@dataclass
class Lifecycle:
    """What one cluster request went through (PR numbers and shas), for the final checks."""

    index: int
    cluster: str
    number: int = 0
    merged_sha: str = ""
    staging: int = 0
    prod: int = 0
    log: list[str] = field(default_factory=list)


class Fleet:
    """The simulator with the example fleet, ``serve`` replicas, and people playing lifecycles."""

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str | None = None,
        replicas: int = 1,
        extra_env: Mapping[str, str] | None = None,
        seed: int = 7,
        setup: Callable[[Driver], Awaitable[Any]] = setup_fleet,
    ) -> None:
        self.workdir = workdir
        self.database_url = database_url or f"sqlite:///{workdir / 'bot.db'}"
        self.replica_count = replicas
        self.extra_env = dict(extra_env or {})
        self.setup = setup  # what the repository holds (the demo's example fleet by default)
        self.sim = Simulator(workdir / "github", seed=seed)
        self.driver: Driver
        self.replicas: list[ServeProcess] = []
        self.session: aiohttp.ClientSession
        self.key = ""

    async def __aenter__(self) -> Fleet:
        await self.sim.start()
        self.driver = PatientDriver(self.sim, self.workdir / "people")
        self.session = aiohttp.ClientSession()
        await self.setup(self.driver)
        pem = self.sim.private_key_pem
        self.key = pem.decode() if isinstance(pem, bytes) else pem
        env = {
            "GITHUB_APP_ID": str(self.sim.world.app_id),
            "GITHUB_PRIVATE_KEY": self.key,
            "GITHUB_WEBHOOK_SECRET": self.sim.webhook_secret,
            "GITHUB_API_URL": self.sim.base_url,
            "GIT_URL": f"{self.sim.base_url}/{{owner}}/{{repo}}.git",
            "DATABASE_URL": self.database_url,
            "GITOPS_BOT_LEASE_SECONDS": "3",
            "GITOPS_BOT_POLL_INTERVAL": "0.05",
            "GITOPS_BOT_RECONCILE_INTERVAL": "2",
            "GITOPS_BOT_RECONCILE_REPOS": REPO,
            "GITOPS_BOT_REDELIVER_INTERVAL": "2",
            "GITOPS_BOT_BACKOFF_BASE": "0.2",
            "GITOPS_BOT_BACKOFF_CAP": "1",
            "LOG_LEVEL": "WARNING",
            **self.extra_env,
        }
        names = "abcdefgh"[: self.replica_count]
        self.replicas = [ServeProcess(n, env, self.workdir, worker="inline") for n in names]
        for replica in self.replicas:
            await replica.start(self.session)
        self.sim.set_webhook_url(f"{self.replicas[0].url}/webhook")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for replica in self.replicas:
            replica.kill()  # the verdict is in; a graceful stop only waits for a reconciler pass
        await self.session.close()
        await self.driver.close()
        await self.sim.stop()

    # ------------------------------------------------------------------ looking at GitHub
    def pulls(self) -> list[Any]:
        return sorted(self.sim.world.pulls.get(REPO, {}).values(), key=lambda p: p.number)

    def promotions(self, number: int, env: str) -> list[Any]:
        return [p for p in self.pulls() if p.title.startswith(f"Promote #{number} to {env}:")]

    def runs_on(self, sha: str) -> list[Any]:
        return [r for r in self.sim.world.runs.values() if r.repo == REPO and r.head_sha == sha]

    def conclusions(self, sha: str) -> dict[str, str]:
        return {r.name: str(r.conclusion or r.status) for r in self.runs_on(sha)}

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 45.0) -> None:
        """Poll GitHub's state until ``predicate`` holds; fail with ``what`` and the bot's logs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            await asyncio.sleep(0.1)
        logs = "\n".join(f"--- {r.name}:\n{r.log_text()}" for r in self.replicas)
        raise AssertionError(f"gave up waiting for {what}\n{logs}")

    # ------------------------------------------------------------------ people
    async def lifecycle(self, index: int) -> Lifecycle:
        """Play one cluster request from the first push to the open prod promotion."""
        d = self.driver
        life = Lifecycle(index, f"payments{index}-dev-euw1")
        path, text = cluster_request(life.cluster)
        branch = f"request/{life.cluster}"
        await d.push("alice", REPO, branch, {path: text}, base="env/dev", message=f"Add {life.cluster}")
        number = life.number = await d.open_pr(
            "alice", REPO, branch, base="env/dev", title=f"Add the {life.cluster} cluster"
        )
        head = self.sim.pull(REPO, number).head_sha

        def checked() -> bool:
            got = self.conclusions(head)
            return all(got.get(name) in {"success", "failure", "neutral"} for name in PR_CHECKS)

        await self.until(checked, f"the checks of PR #{number}")
        assert self.conclusions(head)["gitops-bot/validate"] == "success", self.conclusions(head)
        await d.approve("bob", REPO, number, "Looks right.")
        await d.approve("dave", REPO, number)
        await self.until(
            lambda: self.conclusions(head).get("gitops-bot/approvals") == "success",
            f"the approvals check of PR #{number}",
        )
        merged = await d.merge("bob", REPO, number, "merge")
        life.merged_sha = str(merged["sha"])
        await self.until(
            lambda: bool(self.promotions(number, "staging")), f"the staging promotion of #{number}"
        )
        await d.api(
            "bob",
            "POST",
            f"/repos/{REPO}/statuses/{life.merged_sha}",
            {"state": "success", "context": HEALTH_CONTEXT},
        )
        await self.until(
            lambda: any(p.merged for p in self.promotions(number, "staging")),
            f"the staging promotion of #{number} to merge itself",
        )
        await self.until(lambda: bool(self.promotions(number, "prod")), f"the prod promotion of #{number}")
        return life

    async def settle(self, quiet: float = 5.0, timeout: float = 60.0) -> dict[Status, int]:
        """Wait until GitHub has sent every webhook and the store has had nothing to do for ``quiet`` s.

        ``quiet`` spans two reconciler passes and several redelivery passes, so what they would
        still repair (or do twice) has happened before the verdict.
        """
        store = open_store(self.database_url)
        await store.open()
        try:
            deadline = time.monotonic() + timeout
            idle_since: float | None = None
            counts: dict[Status, int] = {}
            while time.monotonic() < deadline:
                await self.sim.wait_for_webhooks()
                counts = await store.counts()
                busy = counts[Status.PENDING] + counts[Status.PROCESSING] + counts[Status.FAILED]
                now = time.monotonic()
                idle_since = None if busy else (idle_since or now)
                if idle_since is not None and now - idle_since >= quiet:
                    return counts
                await asyncio.sleep(0.2)
            raise AssertionError(f"the bot never went idle: {counts}")
        finally:
            await store.close()

    # ------------------------------------------------------------------ the verdict
    def verify(self, lives: list[Lifecycle]) -> None:
        """Every PR: each check once per head, one sticky diff, one promotion per environment."""
        runs = [r for r in self.sim.world.runs.values() if r.repo == REPO]
        twice = [k for k, n in Counter((r.head_sha, r.name) for r in runs).items() if n > 1]
        assert twice == [], f"check runs created twice: {twice}"
        for life in lives:
            pr = self.sim.pull(REPO, life.number)
            assert pr.merged, f"#{life.number} is not merged"
            got = Counter(r.name for r in self.runs_on(pr.head_sha))
            assert got == Counter(PR_CHECKS), f"#{life.number} check runs on its head: {got}"
            assert all(r.status == "completed" for r in self.runs_on(pr.head_sha))
            bot_comments = [b for a, b in self.driver.comments(REPO, life.number) if a == self.sim.bot_login]
            assert sum("## Rendered diff" in b for b in bot_comments) == 1, f"#{life.number}: {bot_comments}"
            markers = Counter((m["key"], m["n"]) for b in bot_comments if (m := MARKER.search(b)))
            assert all(n == 1 for n in markers.values()), f"#{life.number} sticky comments: {markers}"
            staging, prod = self.promotions(life.number, "staging"), self.promotions(life.number, "prod")
            assert len(staging) == 1 and staging[0].merged, f"#{life.number} staging: {staging}"
            assert staging[0].merged_by == self.sim.bot_login
            assert len(prod) == 1 and prod[0].state == "open" and not prod[0].merged, f"prod: {prod}"
            life.staging, life.prod = staging[0].number, prod[0].number
            promotion_runs = Counter(r.name for r in self.runs_on(prod[0].head_sha))
            assert promotion_runs["gitops-bot/promotion"] == 1, f"#{prod[0].number}: {promotion_runs}"
