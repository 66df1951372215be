"""The dashboard end to end: ``gitops-bot serve`` against the simulator, GitHub login, a real browser.

The example fleet is pushed to ``env/dev``, ``env/staging`` and ``env/prod``; the bot's push
handler fills the store; alice (write access) signs in through the simulator's OAuth web flow
in headless Chromium (Debian's package, driven by Playwright) and sees every cluster, filters
them, and watches a push to ``env/prod`` appear without a reload; mallory (no access) signs
in and sees nothing of the repository. Screenshots are saved under the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot.sim import Driver, Simulator
from tests.conftest import ROOT
from tests.hostile.serve_process import ServeProcess

pytestmark = pytest.mark.slow

REPO = "acme/fleet"
TOKEN = "fleet-automation-token-1234567890"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PROD_USE1 = "clusters/prod/prod-use1/cluster.yaml"


@dataclass
class World:
    sim: Simulator
    driver: Driver
    serve: ServeProcess
    http: aiohttp.ClientSession
    tmp: Path

    async def bearer(self, path: str) -> aiohttp.ClientResponse:
        return await self.http.get(f"{self.serve.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"})

    async def fleet(self) -> dict[str, Any]:
        async with await self.bearer("/fleet.json") as res:
            assert res.status == 200, await res.text()
            data: dict[str, Any] = await res.json()
            return data

    async def until(self, predicate: Any, what: str, timeout: float = 120.0) -> Any:
        for _ in range(int(timeout / 0.5)):
            got = await predicate()
            if got:
                return got
            await asyncio.sleep(0.5)
        raise AssertionError(f"{what} never happened; bot log:\n{self.serve.log_text()}")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with Simulator(tmp_path / "gh", seed=3) as sim, Driver(sim, tmp_path / "driver") as driver:
        driver.user("alice")
        driver.user("mallory")
        driver.org("acme", members=["alice"])
        driver.repo(REPO, collaborators={"alice": "write"})
        driver.install("acme")
        env = {
            "GITHUB_APP_ID": str(sim.world.app_id),
            "GITHUB_PRIVATE_KEY": sim.private_key_pem,
            "GITHUB_WEBHOOK_SECRET": sim.webhook_secret,
            "GITHUB_API_URL": sim.base_url,
            "GIT_URL": sim.base_url + "/{owner}/{repo}.git",
            "GITHUB_CLIENT_ID": sim.oauth_client_id,
            "GITHUB_CLIENT_SECRET": sim.oauth_client_secret,
            "GITOPS_BOT_SESSION_KEY": "session-key-for-tests",
            "GITOPS_BOT_FLEET_TOKEN": TOKEN,
            "GITOPS_BOT_POLL_INTERVAL": "0.05",
            "GITOPS_BOT_RECONCILE_INTERVAL": "0",
        }
        serve = ServeProcess("bot", env, tmp_path, worker="inline")
        async with aiohttp.ClientSession() as http:
            await serve.start(http)
            sim.set_webhook_url(f"{serve.url}/webhook")
            try:
                await driver.push_dir("alice", REPO, "main", ROOT / "examples" / "fleet", message="The fleet")
                for branch in ("env/dev", "env/staging", "env/prod"):
                    await driver.push("alice", REPO, branch, {}, base="main", message=f"Create {branch}")
                yield World(sim, driver, serve, http, tmp_path)
            finally:
                serve.stop()


async def _five(w: World) -> dict[str, Any] | None:
    fleet = await w.fleet()
    return fleet if len(fleet["clusters"]) == 5 else None


async def test_fleet_json_access_exports_and_metrics(world: World) -> None:
    w = world
    fleet = await w.until(lambda: _five(w), "five clusters in /fleet.json")
    rows = {r["cluster"]: r for r in fleet["clusters"]}
    assert rows["prod-use1"]["branch"] == "env/prod" and rows["prod-use1"]["repo"] == REPO
    assert rows["dev-use1"]["version"] == "1.35" and rows["staging-euw1"]["region"] == "eu-west-1"
    # no session, no data
    async with w.http.get(f"{w.serve.url}/fleet.json") as res:
        assert res.status == 401
    async with w.http.get(f"{w.serve.url}/fleet", allow_redirects=False) as res:
        assert res.status == 302 and res.headers["Location"] == "/fleet/login"
    async with w.http.get(f"{w.serve.url}/fleet.json", headers={"Authorization": "Bearer wrong"}) as res:
        assert res.status == 401
    # ETag: the same data answers 304
    async with await w.bearer("/fleet.json") as res:
        tag = res.headers["ETag"]
    async with w.http.get(
        f"{w.serve.url}/fleet.json", headers={"Authorization": f"Bearer {TOKEN}", "If-None-Match": tag}
    ) as res:
        assert res.status == 304
    # a forged OAuth state is refused
    async with w.http.get(f"{w.serve.url}/fleet/oauth/callback?code=x&state=forged") as res:
        assert res.status == 400 and "start again" in await res.text()
    async with await w.bearer("/fleet/policyreports.yaml") as res:
        reports = list(yaml.safe_load_all(await res.text()))
    assert len(reports) == 5 and {r["kind"] for r in reports} == {"PolicyReport"}
    async with w.http.get(f"{w.serve.url}/metrics") as res:
        metrics = await res.text()
    assert 'gitops_bot_cluster_support_days{cluster="prod-use1",env="prod",repository="acme/fleet"' in metrics
    assert 'gitops_bot_env_pending_promotions{env="dev",repository="acme/fleet"} 0.0' in metrics


def _browser_or_skip() -> Any:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    return async_playwright


async def _sign_in(page: Any, base: str, login: str) -> None:
    await page.goto(f"{base}/fleet")
    await page.fill("#login_field", login)  # the simulator's GitHub sign-in page
    await page.click("button[name=authorize]")
    await page.wait_for_url(f"{base}/fleet")


async def test_browser_login_filters_live_update_and_no_access(world: World) -> None:
    async_playwright = _browser_or_skip()
    w = world
    await w.until(lambda: _five(w), "five clusters in /fleet.json")
    shots = w.tmp / "screenshots"
    shots.mkdir()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            alice = await browser.new_page(viewport={"width": 1400, "height": 900})
            await _sign_in(alice, w.serve.url, "alice")
            rows = alice.locator("#rows tr")
            await rows.first.wait_for()
            assert await rows.count() == 5
            assert "signed in as alice" in await alice.inner_text("header")
            cookie = next(c for c in await alice.context.cookies() if c["name"] == "gitops_bot_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
            await alice.screenshot(path=str(shots / "alice-fleet.png"), full_page=True)
            # filters and search
            await alice.select_option("#f-env", "prod")
            assert await rows.count() == 2
            await alice.select_option("#f-env", "")
            await alice.fill("#f-q", "euw1")
            assert await rows.count() == 2
            await alice.fill("#f-q", "")
            await alice.select_option("#f-region", "eu-west-1")
            assert await rows.count() == 2
            await alice.select_option("#f-region", "")
            # sort by cluster name with the keyboard
            await alice.focus("th[data-key=cluster] button")
            await alice.keyboard.press("Enter")
            assert await alice.get_attribute("th[data-key=cluster]", "aria-sort") == "ascending"
            first = await alice.inner_text("#rows tr:first-child th")
            assert first.startswith("dev-use1")
            # live: a push to env/prod shows without a reload
            await alice.evaluate("window.__same_page = true")
            cluster = (ROOT / "examples" / "fleet" / PROD_USE1).read_text().replace('"1.34"', '"1.29"')
            await w.driver.push(
                "alice", REPO, "env/prod", {PROD_USE1: cluster}, message="prod-use1 back to 1.29"
            )
            row = alice.locator("#rows tr[data-id='acme/fleet:env/prod:prod-use1']")
            await row.locator("text=unsupported").wait_for(timeout=120_000)
            assert await alice.evaluate("window.__same_page") is True  # no reload happened
            assert "out of EKS support" in await row.inner_text()
            await alice.screenshot(path=str(shots / "alice-after-push.png"), full_page=True)

            mallory = await (await browser.new_context()).new_page()
            await _sign_in(mallory, w.serve.url, "mallory")
            await mallory.wait_for_selector("#shown")
            assert await mallory.locator("#rows tr").count() == 0
            assert "prod-use1" not in await mallory.content() and REPO not in await mallory.content()
            answer = await mallory.evaluate("fetch('/fleet.json').then(r => r.text())")
            assert REPO not in answer
            await mallory.screenshot(path=str(shots / "mallory-fleet.png"), full_page=True)
        finally:
            await browser.close()
    print(f"screenshots: {shots}")
