"""Merges done with real git, check-run limits, pagination, faults, deliveries and redelivery."""

from __future__ import annotations

import aiohttp
import pytest

from bot.git.files import git
from bot.sim import Driver, FaultRule, Simulator
from bot.sim.gitops import commit_info

from .conftest import Api, Receiver


async def _pr(world: Driver, branch: str, files: dict[str, str | None], commits: int = 1) -> int:
    for i in range(commits):
        await world.push(
            "alice", "acme/fleet", branch, {k: f"{v}{i}\n" if v else v for k, v in files.items()}
        )
    return await world.open_pr("alice", "acme/fleet", branch, title=f"Change {branch}")


@pytest.mark.parametrize("method", ["merge", "squash", "rebase"])
async def test_merge_methods(world: Driver, sim: Simulator, method: str) -> None:
    n = await _pr(world, f"m-{method}", {f"{method}.txt": "v"}, commits=2)
    repo = sim.world.repos["acme/fleet"]
    base_before = git(repo.path, "rev-parse", "refs/heads/main").decode().strip()
    head = sim.pull("acme/fleet", n).head_sha
    result = await world.merge("bob", "acme/fleet", n, method)
    main = git(repo.path, "rev-parse", "refs/heads/main").decode().strip()
    assert result["merged"] is True and result["sha"] == main
    info = commit_info(repo.path, main)
    assert git(repo.path, "show", f"{main}:{method}.txt").decode() == "v1\n"
    if method == "merge":
        assert info.parents == [base_before, head]
    elif method == "squash":
        assert info.parents == [base_before] and info.message.startswith(f"Change m-{method} (#{n})")
    else:
        assert len(git(repo.path, "rev-list", f"{base_before}..{main}").split()) == 2
        assert head not in git(repo.path, "rev-list", main).decode()
    pr = sim.pull("acme/fleet", n)
    assert pr.merged and pr.state == "closed" and pr.merge_commit_sha == main
    again = await world.merge("bob", "acme/fleet", n, method, expect=405)
    assert again["message"] == "Pull Request is not mergeable"


async def test_conflicts_and_stale_sha_refuse_to_merge(world: Driver, sim: Simulator, api: Api) -> None:
    n = await _pr(world, "conflict", {"clusters/dev.yaml": "a: from-branch"})
    await world.push("bob", "acme/fleet", "main", {"clusters/dev.yaml": "a: from-main\n"})
    _, pr, _ = await api.call(world.people["bob"].token, "GET", f"/repos/acme/fleet/pulls/{n}", expect=200)
    assert pr["mergeable"] is False and pr["mergeable_state"] == "dirty"
    status, body, _ = await api.call(
        world.people["bob"].token, "PUT", f"/repos/acme/fleet/pulls/{n}/merge", {}
    )
    assert (status, body["message"]) == (405, "Pull Request is not mergeable")
    m = await _pr(world, "stale", {"x.txt": "x"})
    status, body, _ = await api.call(
        world.people["bob"].token, "PUT", f"/repos/acme/fleet/pulls/{m}/merge", {"sha": "0" * 40}
    )
    assert status == 409 and "Head branch was modified" in body["message"]


async def test_reviews_carry_commit_id_and_github_rules(world: Driver, sim: Simulator, api: Api) -> None:
    n = await _pr(world, "rev", {"r.txt": "r"})
    first = sim.pull("acme/fleet", n).head_sha
    await world.approve("bob", "acme/fleet", n)
    second = await world.push("alice", "acme/fleet", "rev", {"r.txt": "changed\n"})
    await world.review("carol", "acme/fleet", n, "COMMENT", "looks fine")
    _, reviews, _ = await api.call(world.people["alice"].token, "GET", f"/repos/acme/fleet/pulls/{n}/reviews")
    assert [(r["user"]["login"], r["state"], r["commit_id"]) for r in reviews] == [
        ("bob", "APPROVED", first),
        ("carol", "COMMENTED", second),
    ]
    status, body, _ = await api.call(
        world.people["alice"].token, "POST", f"/repos/acme/fleet/pulls/{n}/reviews", {"event": "APPROVE"}
    )
    assert status == 422 and "own pull request" in body["errors"][0]


async def test_check_run_limits_answer_422_like_github(world: Driver, sim: Simulator, api: Api) -> None:
    sha = await world.push("alice", "acme/fleet", "checks", {"c.txt": "c\n"})
    inst = sim.world.installation_for("acme")
    assert inst is not None
    token = sim.installation_token(inst.id).value
    ann = {"path": "c.txt", "start_line": 1, "end_line": 1, "annotation_level": "failure", "message": "bad"}
    too_many = {
        "name": "gitops-bot",
        "head_sha": sha,
        "output": {"title": "t", "summary": "s", "annotations": [ann] * 51},
    }
    status, body, _ = await api.call(token, "POST", "/repos/acme/fleet/check-runs", too_many)
    assert status == 422 and body["message"].startswith("Invalid request.\n\n") and body["status"] == "422"
    too_long = {"name": "gitops-bot", "head_sha": sha, "output": {"title": "t", "summary": "x" * 65536}}
    assert (await api.call(token, "POST", "/repos/acme/fleet/check-runs", too_long))[0] == 422
    missing = {"head_sha": sha}
    status, body, _ = await api.call(token, "POST", "/repos/acme/fleet/check-runs", missing)
    assert status == 422 and "name" in body["message"]
    ok = {
        "name": "gitops-bot",
        "head_sha": sha,
        "output": {"title": "t", "summary": "s", "annotations": [ann] * 50},
    }
    _, run, _ = await api.call(token, "POST", "/repos/acme/fleet/check-runs", ok, expect=201)
    assert run["output"]["annotations_count"] == 50
    listing = f"/repos/acme/fleet/commits/{sha}/check-runs"
    _, mine, _ = await api.call(token, "GET", f"{listing}?app_id={sim.world.app_id}")
    assert [r["id"] for r in mine["check_runs"]] == [run["id"]] and run["app"]["id"] == sim.world.app_id
    _, others, _ = await api.call(token, "GET", f"{listing}?app_id={sim.world.app_id + 1}")
    assert others == {"total_count": 0, "check_runs": []}
    assert (await api.call(world.people["alice"].token, "POST", "/repos/acme/fleet/check-runs", ok))[0] == 403


async def test_link_pagination(world: Driver, sim: Simulator, api: Api) -> None:
    n = await _pr(world, "pages", {"p.txt": "p"})
    for i in range(5):
        await world.comment("bob", "acme/fleet", n, f"comment {i}")
    token = world.people["alice"].token
    _, page1, headers = await api.call(token, "GET", f"/repos/acme/fleet/issues/{n}/comments?per_page=2")
    assert [c["body"] for c in page1] == ["comment 0", "comment 1"]
    assert 'rel="next"' in headers["Link"] and 'rel="last"' in headers["Link"] and "page=3" in headers["Link"]
    _, page3, headers = await api.call(
        token, "GET", f"/repos/acme/fleet/issues/{n}/comments?per_page=2&page=3"
    )
    assert [c["body"] for c in page3] == ["comment 4"]
    assert 'rel="next"' not in headers["Link"] and 'rel="prev"' in headers["Link"]


async def test_faults_from_python_and_admin_route(world: Driver, sim: Simulator, api: Api) -> None:
    token = world.people["alice"].token
    sim.add_fault(FaultRule("error", route="/repos/{owner}/{repo}", method="GET", status=503, times=1))
    assert (await api.call(token, "GET", "/repos/acme/fleet"))[0] == 503
    assert (await api.call(token, "GET", "/repos/acme/fleet"))[0] == 200
    sim.add_fault(FaultRule("secondary_rate_limit", route="/repos/*/pulls*", retry_after=7, times=1))
    status, body, headers = await api.call(token, "GET", "/repos/acme/fleet/pulls")
    assert status == 403 and headers["Retry-After"] == "7" and "secondary rate limit" in body["message"]
    sim.add_fault(FaultRule("rate_limit_429", route="*", method="GET", times=1))
    assert (await api.call(token, "GET", "/repos/acme/fleet"))[0] == 429
    # unlimited, because aiohttp retries an idempotent request once after a disconnect
    drop = sim.add_fault(FaultRule("drop_connection", route="/repos/{owner}/{repo}"))
    with pytest.raises(aiohttp.ClientError):
        await api.call(token, "GET", "/repos/acme/fleet")
    sim.faults.rules.remove(drop)
    sim.add_fault(FaultRule("slow", route="/repos/{owner}/{repo}", delay=0.05, times=1))
    assert (await api.call(token, "GET", "/repos/acme/fleet"))[0] == 200
    # the admin route sets rules out of process, and the log counts requests by route
    async with api.session.post(
        f"{sim.base_url}/_sim/faults", json={"kind": "error", "route": "/rate_limit", "status": 500}
    ) as resp:
        assert resp.status == 201
    assert (await api.call(token, "GET", "/rate_limit"))[0] == 500
    for bad in ({"kind": "nonsense"}, ["error"], {"kind": "error", "colour": "red"}):
        async with api.session.post(f"{sim.base_url}/_sim/faults", json=bad) as resp:
            assert resp.status == 422 and "bad fault rule" in (await resp.json())["message"]
    async with api.session.delete(f"{sim.base_url}/_sim/faults?seed=x") as resp:
        assert resp.status == 422
    async with api.session.delete(f"{sim.base_url}/_sim/faults") as resp:
        assert resp.status == 204
    assert (await api.call(token, "GET", "/rate_limit"))[0] == 200
    async with api.session.get(f"{sim.base_url}/_sim/requests") as resp:
        log = await resp.json()
    assert log["counts"]["GET /repos/{owner}/{repo}"] == 6
    assert sim.requests.count("GET", "/rate_limit") == 2


def test_fault_probability_is_reproducible_with_a_seed() -> None:
    from bot.sim.faults import Faults

    def run(seed: int) -> list[bool]:
        faults = Faults(seed=seed)
        faults.add(FaultRule("error", probability=0.5))
        return [faults.pick("GET", "/x") is not None for _ in range(40)]

    assert run(3) == run(3)
    assert 5 < sum(run(3)) < 35
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultRule("explode")


async def test_dropped_delivery_is_listed_and_redelivered(
    world: Driver, sim: Simulator, api: Api, receiver: Receiver
) -> None:
    sim.add_fault(FaultRule("drop_webhook", route="issue_comment", times=1))
    n = await _pr(world, "hooks", {"h.txt": "h"})
    await world.comment("bob", "acme/fleet", n, "/help")
    assert receiver.of("issue_comment") == []
    jwt = sim.app_jwt()
    _, items, headers = await api.call(jwt, "GET", "/app/hook/deliveries?per_page=2", expect=200)
    assert len(items) == 2 and 'rel="next"' in headers["Link"]
    cursor = headers["Link"].split("cursor=")[1].split(">")[0].split("&")[0]
    _, more, _ = await api.call(jwt, "GET", f"/app/hook/deliveries?per_page=100&cursor={cursor}", expect=200)
    assert {i["id"] for i in items}.isdisjoint({i["id"] for i in more})
    failed = next(i for i in items + more if i["event"] == "issue_comment")
    assert failed["status_code"] == 0 and failed["redelivery"] is False
    await api.call(jwt, "POST", f"/app/hook/deliveries/{failed['id']}/attempts", expect=202)
    await sim.wait_for_webhooks()
    got = receiver.received[-1]
    assert got["event"] == "issue_comment" and got["headers"]["X-GitHub-Delivery"] == failed["guid"]
    _, latest, _ = await api.call(jwt, "GET", "/app/hook/deliveries?per_page=1", expect=200)
    assert latest[0]["redelivery"] is True and latest[0]["status_code"] == 202 and latest[0]["status"] == "OK"


async def test_bad_bodies_get_githubs_422_wording(world: Driver, sim: Simulator, api: Api) -> None:
    token = world.people["alice"].token
    status, body, _ = await api.call(token, "POST", "/repos/acme/fleet/pulls", {"head": "x"})
    assert status == 422 and body["status"] == "422"
    assert body["message"] == 'Invalid request.\n\n"base" wasn\'t supplied.'
    status, body, _ = await api.call(token, "POST", "/repos/acme/fleet/pulls", {"head": 5, "base": "main"})
    assert status == 422 and "For 'properties/head'" in body["message"]
    async with api.session.post(
        f"{sim.base_url}/repos/acme/fleet/pulls",
        data=b"{not json",
        headers={"Authorization": f"token {token}"},
    ) as resp:
        assert resp.status == 400 and (await resp.json())["message"] == "Problems parsing JSON"


async def test_primary_rate_limit_answers_403_when_spent(world: Driver, sim: Simulator, api: Api) -> None:
    sim.rate_limit = 3
    token = sim.user_token("bob")
    for expected_remaining in (2, 1, 0):
        status, _, headers = await api.call(token, "GET", "/repos/acme/fleet")
        assert status == 200 and headers["X-RateLimit-Remaining"] == str(expected_remaining)
    status, body, headers = await api.call(token, "GET", "/repos/acme/fleet")
    assert status == 403 and body["message"].startswith("API rate limit exceeded")
    _, limits, _ = await api.call(token, "GET", "/rate_limit", expect=200)
    assert limits["rate"]["remaining"] <= 0 and limits["rate"]["reset"] > 0


async def test_failing_receiver_is_recorded(
    world: Driver, sim: Simulator, api: Api, receiver: Receiver
) -> None:
    receiver.status = 500
    n = await _pr(world, "failing", {"f.txt": "f"})
    await world.comment("bob", "acme/fleet", n, "hello")
    _, items, _ = await api.call(sim.app_jwt(), "GET", "/app/hook/deliveries?per_page=1", expect=200)
    assert items[0]["event"] == "issue_comment"
    assert (items[0]["status_code"], items[0]["status"]) == (500, "Invalid HTTP Response: 500")
    status, _, _ = await api.call(sim.app_jwt(), "GET", "/app/hook/deliveries?per_page=lots")
    assert status == 422
