"""The ``gitops-bot demo`` scenario: a cluster request through its whole life on a local GitHub.

Starts the simulator and the real bot (``create_app``: webhook, durable store, worker, git
mirror, every handler) on local ports, with ``examples/fleet`` as the GitOps repository,
then plays people: a developer asks for a cluster, the bot answers with checks and the
rendered diff, the developer fixes the request, reviewers approve, commands are given, the
request merges into ``env/dev`` and the bot carries it to ``env/staging`` and ``env/prod``
through its gates. Then a production cluster is upgraded blue/green through its traffic steps,
with a rollback on the way (:mod:`bot.sim.demo_upgrade`). :class:`DemoWorld` is reused by the
end-to-end tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.git.files import rev_parse
from bot.queue.base import Status
from bot.service.app import STORE, create_app
from bot.service.settings import load_settings
from bot.sim.driver import Driver
from bot.sim.server import Simulator

REPO = "example-org/fleet"
ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "examples" / "fleet"
REQUESTS = ROOT / "examples" / "requests"
ENV_BRANCHES = ("env/dev", "env/staging", "env/prod")
HEALTH_CONTEXT = "flux/kustomization"

Out = Callable[[str], None]


def demo_config(text: str) -> str:
    """Shorten soak times to seconds and drop the weekly freeze, so the demo runs in a minute."""
    text = re.sub(r"soak: \d+[mh]", "soak: 3s", text)
    return re.sub(r"\n +- \{?schedule:[^\n]*(\n +[a-z_]+:[^\n]*)*", "", text)


PEOPLE = ("alice", "bob", "dave", "carol", "mallory")


async def setup_fleet(d: Driver) -> int:
    """Create the demo's people, teams and ``REPO`` with the example fleet on every branch.

    The App is installed on the organisation before the pushes, so the bot sees them; returns
    the installation id. ``.github/gitops-bot.yml`` goes through :func:`demo_config`.
    """
    for login in PEOPLE:
        d.user(login, email=f"{login}@example.com")
    d.org("example-org", members=list(PEOPLE))
    d.team("example-org", "platform", members=["bob", "dave"])
    d.team("example-org", "sre", members=["carol"])
    d.team("example-org", "payments", members=["alice"])
    d.team("example-org", "platform-admins", members=["bob"])  # CODEOWNERS: /.github/
    d.repo(
        REPO,
        collaborators={
            "alice": "write",
            "bob": "maintain",
            "dave": "write",
            "carol": "write",
            "mallory": "read",
        },
    )
    installation_id = d.install("example-org").id
    files = {
        str(p.relative_to(FLEET)): p.read_text(encoding="utf-8")
        for p in sorted(FLEET.rglob("*"))
        if p.is_file()
    }
    files[".github/gitops-bot.yml"] = demo_config(files[".github/gitops-bot.yml"])
    for branch in ("main", *ENV_BRANCHES):
        await d.push("bob", REPO, branch, dict(files), message="The example fleet", base=None)
    return installation_id


def cluster_request(name: str, team: str = "payments") -> tuple[str, str]:
    """``(path, text)`` of the good dev cluster request, renamed to cluster ``name`` of ``team``."""
    text = (REQUESTS / "good-dev-cluster.yaml").read_text(encoding="utf-8").replace("payments-dev-euw1", name)
    return f"clusters/dev/{name}/cluster.yaml", text.replace("team: payments", f"team: {team}")


class DemoWorld:
    """The simulator plus the bot, wired together on local ports, and people acting on them."""

    def __init__(self, workdir: Path, *, out: Out = print, reconcile_interval: float = 1.0) -> None:
        self.workdir = workdir
        self.out = out
        self.reconcile_interval = reconcile_interval
        self.sim = Simulator(workdir / "github", seed=7)
        self.driver: Driver
        self.app: web.Application
        self.runner: web.AppRunner
        self.bot_url = ""
        self.dashboard_url = ""
        self.installation_id = 0

    async def __aenter__(self) -> DemoWorld:
        await self.sim.start()
        self.driver = Driver(self.sim, self.workdir / "people")
        key_path = self.workdir / "app-key.pem"
        key_path.write_text(self.sim.private_key_pem)
        settings = load_settings(
            {
                "GITHUB_APP_ID": str(self.sim.world.app_id),
                "GITHUB_PRIVATE_KEY_PATH": str(key_path),
                "GITHUB_WEBHOOK_SECRET": self.sim.webhook_secret,
                "GITHUB_API_URL": self.sim.base_url,
                "GIT_URL": f"{self.sim.base_url}/{{owner}}/{{repo}}.git",
                "DATABASE_URL": f"sqlite:///{self.workdir / 'bot.db'}",
                "GITOPS_BOT_DATA_DIR": str(self.workdir / "bot"),
                "GITOPS_BOT_POLL_INTERVAL": "0.05",
                "GITOPS_BOT_RECONCILE_INTERVAL": str(self.reconcile_interval),
                "GITOPS_BOT_RECONCILE_REPOS": REPO,
                "GITOPS_BOT_REDELIVER_INTERVAL": "0",
                "GITOPS_BOT_BACKOFF_BASE": "0.2",
                "GITOPS_BOT_BACKOFF_CAP": "2",
                "LOG_LEVEL": "ERROR",
                "GITHUB_CLIENT_ID": self.sim.oauth_client_id,
                "GITHUB_CLIENT_SECRET": self.sim.oauth_client_secret,
                "GITOPS_BOT_SESSION_KEY": secrets.token_hex(16),
            }
        )
        self.app = create_app(settings)
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = getattr(site, "_server", None)
        port = server.sockets[0].getsockname()[1] if server is not None else 0
        self.bot_url = f"http://127.0.0.1:{port}/webhook"
        self.dashboard_url = f"http://127.0.0.1:{port}/fleet"
        self.sim.set_webhook_url(self.bot_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.driver.close()
        await self.runner.cleanup()
        await self.sim.stop()

    # ------------------------------------------------------------------ set-up
    async def setup_fleet(self) -> None:
        """People, teams, the repository with the example fleet on every environment branch."""
        self.installation_id = await setup_fleet(self.driver)
        await self.settle()

    async def show_dashboard(self) -> None:
        """End with what the fleet dashboard shows (the same facts /fleet.json serves)."""
        from bot.domain.fleet import build_fleet
        from bot.domain.fleet.model import summary_lines
        from bot.domain.validate.eks import EksCatalog
        from bot.fleet.state import load_facts

        fleet = build_fleet(
            await load_facts(self.app[STORE]), EksCatalog.bundled(), date.today(), datetime.now(UTC)
        )
        self.heading(f"The fleet dashboard at {self.dashboard_url} shows")
        for line in summary_lines(fleet):
            self.out(f"  {line}")

    # ------------------------------------------------------------------ waiting
    async def settle(self, timeout: float = 90.0) -> None:
        """Wait until GitHub has delivered every webhook and the bot has processed every delivery."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            await self.sim.wait_for_webhooks(timeout=max(1.0, deadline - time.monotonic()))
            counts = await self.app[STORE].counts()
            busy = counts[Status.PENDING] + counts[Status.PROCESSING] + counts[Status.FAILED]
            quiet = quiet + 1 if busy == 0 else 0
            if quiet >= 3:
                return
            await asyncio.sleep(0.1)
        self.out("  (the bot is still busy after the time limit; carrying on)")

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> bool:
        """Wait (letting the reconciler and webhooks run) until ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.settle()
            if predicate():
                return True
            await asyncio.sleep(0.3)
        self.out(f"  (gave up waiting for {what})")
        return False

    # ------------------------------------------------------------------ what people see
    def pr(self, number: int) -> Any:
        return self.sim.pull(REPO, number)

    def open_prs(self) -> list[Any]:
        return sorted(self.sim.world.pulls.get(REPO, {}).values(), key=lambda p: p.number)

    def promotion_into(self, branch: str) -> Any | None:
        for p in self.open_prs():
            if p.base_ref == branch and p.head_ref.startswith("gitops-bot/promote/"):
                return p
        return None

    def checks(self, number: int) -> dict[str, str]:
        return {r["name"]: str(r["conclusion"] or r["status"]) for r in self.driver.check_runs(REPO, number)}

    def show_checks(self, number: int, *, annotations: bool = True) -> None:
        marks = {"success": "✔", "failure": "✘", "neutral": "○"}
        for run in self.driver.check_runs(REPO, number):
            mark = marks.get(run["conclusion"] or "", "…")
            self.out(f"  [{mark}] {run['name']}: {run['title'] or run['conclusion']}")
            if annotations:
                for a in run["annotations"]:
                    message = str(a.get("message", "")).splitlines()[0]
                    self.out(f"        {a.get('path')}:{a.get('start_line')}  {message}")

    def show_comments(self, number: int, *, since: int = 0, max_lines: int = 60) -> int:
        """Print the comments after index ``since``; return the new count."""
        comments = self.driver.comments(REPO, number)
        for author, body in comments[since:]:
            lines = [line for line in body.strip().splitlines() if not line.startswith("<!--")]
            self.out(f"  ── {author} commented:")
            for line in lines[:max_lines]:
                self.out(f"  │ {line}")
            if len(lines) > max_lines:
                self.out(f"  │ … ({len(lines) - max_lines} more lines)")
        return len(comments)

    def heading(self, text: str) -> None:
        self.out("")
        self.out(f"━━ {text}")


async def play(world: DemoWorld) -> dict[str, Any]:
    """Play the whole story; return what happened (PR numbers and states) for tests."""
    d, out = world.driver, world.out
    result: dict[str, Any] = {}
    out(f"A local GitHub runs at {world.sim.base_url}; gitops-bot listens at {world.bot_url}.")
    out(f"The fleet dashboard: {world.dashboard_url} (sign in with GitHub as alice).")
    await world.setup_fleet()
    out(f"{REPO} holds examples/fleet on {', '.join(ENV_BRANCHES)} (soak times shortened for the demo).")

    world.heading("1. alice asks for a cluster, copied from a blog post")
    bad = (REQUESTS / "bad-cluster.yaml").read_text()
    path = "clusters/dev/analytics-dev-use1/cluster.yaml"
    await d.push(
        "alice", REPO, "request/analytics", {path: bad}, base="env/dev", message="Add analytics cluster"
    )
    number = await d.open_pr(
        "alice", REPO, "request/analytics", base="env/dev", title="Add the analytics dev cluster"
    )
    result["request"] = number
    await world.settle()
    out(f"PR #{number} into env/dev — the checks, with annotations on the YAML lines:")
    world.show_checks(number)
    world.show_comments(number, max_lines=14)

    world.heading("2. alice fixes the request and pushes")
    _, good = cluster_request("analytics-dev-use1", team="analytics")
    await d.push(
        "alice", REPO, "request/analytics", {path: good}, message="Use a supported version and sizes"
    )
    await world.settle()
    world.show_checks(number)
    out("  (the sticky comment was updated in place with the rendered diff:)")
    world.show_comments(number, since=0, max_lines=40)

    world.heading("3. commands: someone without write access, an unknown command, /diff")
    await d.comment("mallory", REPO, number, "/promote prod")
    await d.comment("alice", REPO, number, "/deploy now")
    await d.comment("alice", REPO, number, "/diff")
    await world.settle()
    world.show_comments(number, since=1, max_lines=12)

    world.heading("4. reviews: two platform engineers approve")
    await d.approve("bob", REPO, number, "Looks right.")
    await d.approve("dave", REPO, number)
    await world.settle()
    world.show_checks(number, annotations=False)

    world.heading("5. bob merges into env/dev; the bot opens the promotion to staging")
    merged = await d.merge("bob", REPO, number, "merge")
    await world.until(lambda: world.promotion_into("env/staging") is not None, "the staging promotion PR")
    staging = world.promotion_into("env/staging")
    if staging is None:
        return result
    result["staging"] = staging.number
    out(f"PR #{staging.number}: {staging.title}")
    world.show_checks(staging.number, annotations=False)
    out("Flux reports env/dev healthy at the merge commit (the status its notification-controller posts):")
    await d.api(
        "bob",
        "POST",
        f"/repos/{REPO}/statuses/{merged['sha']}",
        {"state": "success", "context": HEALTH_CONTEXT},
    )
    await world.until(lambda: world.pr(staging.number).merged, "the staging promotion to merge itself")
    out(f"After the soak, every gate held and the bot merged PR #{staging.number} into env/staging.")
    world.show_checks(staging.number, annotations=False)

    world.heading("6. prod: a hold, the SRE approval, and a person presses merge")
    await world.until(lambda: world.promotion_into("env/prod") is not None, "the prod promotion PR")
    prod = world.promotion_into("env/prod")
    if prod is None:
        return result
    result["prod"] = prod.number
    out(f"PR #{prod.number}: {prod.title}")
    staging_head = rev_parse(world.sim.world.repos[REPO].path, "refs/heads/env/staging")
    await d.api(
        "bob",
        "POST",
        f"/repos/{REPO}/statuses/{staging_head}",
        {"state": "success", "context": HEALTH_CONTEXT},
    )
    await d.comment("carol", REPO, prod.number, "/hold waiting for the change window")
    await world.settle()
    world.show_checks(prod.number, annotations=False)
    world.show_comments(prod.number, since=0, max_lines=6)
    await d.comment("carol", REPO, prod.number, "/unhold")
    await d.approve("carol", REPO, prod.number, "SRE approves.")
    await world.until(
        lambda: world.checks(prod.number).get("gitops-bot/promotion") == "success", "the prod gates"
    )
    world.show_checks(prod.number, annotations=False)
    await d.merge("carol", REPO, prod.number, "merge")
    await world.settle()

    from bot.sim.demo_upgrade import play_upgrade  # it imports this module

    result["upgrade"] = await play_upgrade(world)

    world.heading("Where everything ended")
    for p in world.open_prs():
        state = "merged" if p.merged else p.state
        out(f"  #{p.number:<3} {state:<7} {p.base_ref:<12} ← {p.head_ref:<42} {p.title}")
    result["states"] = {p.number: ("merged" if p.merged else p.state) for p in world.open_prs()}
    await world.show_dashboard()
    return result


async def run_demo(workdir: Path, out: Out = print) -> dict[str, Any]:
    """Start everything in ``workdir``, play the story, tear down; return the outcome."""
    async with DemoWorld(workdir, out=out) as world:
        return await play(world)
