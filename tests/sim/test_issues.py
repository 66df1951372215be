"""Plain issues on the simulator: create, get, update, list, and their ``issues`` webhooks.

Every answer is checked against the response schema (``api`` fixture) and every delivery against
its webhook schema (``receiver`` fixture), so these tests also pin the project-local fragment
``bot/sim/data/issues.openapi.json`` and the ``issues`` schemas to what the simulator sends.
"""

from __future__ import annotations

from bot.sim import Driver, Simulator

from .conftest import Api, Receiver

BASE = "/repos/acme/fleet/issues"


async def test_issue_lifecycle_with_webhooks(
    world: Driver, sim: Simulator, api: Api, receiver: Receiver
) -> None:
    alice = world.people["alice"].token
    _, created, headers = await api.call(
        alice, "POST", BASE, {"title": "Upgrade dev", "body": "plan", "labels": ["upgrade"]}, expect=201
    )
    number = created["number"]
    assert headers["Location"].endswith(f"{BASE}/{number}")
    assert created["state"] == "open" and created["user"]["login"] == "alice"
    assert [lbl["name"] for lbl in created["labels"]] == ["upgrade"]
    assert "pull_request" not in created

    _, got, _ = await api.call(alice, "GET", f"{BASE}/{number}", expect=200)
    assert (
        got["title"] == "Upgrade dev"
        and got["body"] == "plan"
        and got["html_url"].endswith(f"/issues/{number}")
    )

    await api.call(
        alice, "PATCH", f"{BASE}/{number}", {"title": "Upgrade dev to 1.32", "body": "new"}, expect=200
    )
    _, closed, _ = await api.call(
        alice, "PATCH", f"{BASE}/{number}", {"state": "closed", "state_reason": "not_planned"}, expect=200
    )
    assert closed["state"] == "closed" and closed["state_reason"] == "not_planned" and closed["closed_at"]
    assert closed["closed_by"]["login"] == "alice"
    _, reopened, _ = await api.call(alice, "PATCH", f"{BASE}/{number}", {"state": "open"}, expect=200)
    assert reopened["state_reason"] == "reopened" and reopened["closed_at"] is None
    await sim.wait_for_webhooks()

    issues = [(a, p["issue"]["number"]) for a, p in ((p["action"], p) for p in receiver.of("issues"))]
    assert issues == [
        ("opened", number),
        ("labeled", number),
        ("edited", number),
        ("closed", number),
        ("reopened", number),
    ]
    edited = receiver.of("issues", "edited")[0]
    assert edited["changes"] == {"title": {"from": "Upgrade dev"}, "body": {"from": "plan"}}
    assert edited["sender"]["login"] == "alice"
    assert receiver.of("issues", "labeled")[0]["label"]["name"] == "upgrade"


async def test_issues_and_pulls_share_numbers_and_the_list(world: Driver, api: Api) -> None:
    alice = world.people["alice"].token
    first = await world.open_issue("alice", "acme/fleet", "first")
    await world.push("alice", "acme/fleet", "feature", {"clusters/dev.yaml": "a: 2\n"})
    pr = await world.open_pr("alice", "acme/fleet", head="feature", base="main", title="a PR")
    second = await world.open_issue("bob", "acme/fleet", "second")
    assert (first, pr, second) == (1, 2, 3)

    _, listed, _ = await api.call(alice, "GET", BASE, expect=200)
    assert [i["number"] for i in listed] == [3, 2, 1]  # newest first, as GitHub sorts by default
    assert [("pull_request" in i) for i in listed] == [False, True, False]
    _, as_issue, _ = await api.call(alice, "GET", f"{BASE}/{pr}", expect=200)
    assert as_issue["pull_request"]["url"].endswith(f"/pulls/{pr}")
    _, asc, _ = await api.call(alice, "GET", f"{BASE}?direction=asc&creator=bob", expect=200)
    assert [i["number"] for i in asc] == [3]


async def test_list_filters_state_labels_since_and_pages(world: Driver, api: Api) -> None:
    alice = world.people["alice"].token
    numbers = [
        await world.open_issue("alice", "acme/fleet", f"issue {n}", labels=["upgrade"] if n % 2 else [])
        for n in range(5)
    ]
    await world.set_issue_state("alice", "acme/fleet", numbers[1], "closed")

    _, open_up, _ = await api.call(alice, "GET", f"{BASE}?labels=upgrade", expect=200)
    assert [i["number"] for i in open_up] == [numbers[3]]
    _, all_up, _ = await api.call(alice, "GET", f"{BASE}?labels=UPGRADE&state=all", expect=200)
    assert {i["number"] for i in all_up} == {numbers[1], numbers[3]}
    _, closed, _ = await api.call(alice, "GET", f"{BASE}?state=closed", expect=200)
    assert [i["number"] for i in closed] == [numbers[1]]
    _, none, _ = await api.call(alice, "GET", f"{BASE}?labels=upgrade,other", expect=200)
    assert none == []
    _, later, _ = await api.call(alice, "GET", f"{BASE}?since=2999-01-01T00:00:00Z", expect=200)
    assert later == []

    _, page1, headers = await api.call(alice, "GET", f"{BASE}?per_page=2", expect=200)
    assert len(page1) == 2 and 'rel="next"' in headers["Link"] and 'rel="last"' in headers["Link"]
    _, page3, headers3 = await api.call(alice, "GET", f"{BASE}?per_page=2&page=2", expect=200)
    assert len(page3) == 2 and 'rel="prev"' in headers3["Link"]


async def test_bad_requests_get_githubs_answers(world: Driver, api: Api) -> None:
    alice, carol = world.people["alice"].token, world.people["carol"].token
    status, body, _ = await api.call(alice, "POST", BASE, {"body": "no title"})
    assert status == 422 and '"title" wasn\'t supplied' in body["message"]
    status, body, _ = await api.call(alice, "POST", BASE, {"title": "   "})
    assert status == 422 and body["errors"][0]["field"] == "title"
    status, _, _ = await api.call(alice, "POST", BASE, {"title": "x", "labels": "upgrade"})
    assert status == 422  # labels must be an array
    status, _, _ = await api.call(alice, "GET", f"{BASE}?state=merged")
    assert status == 422
    status, _, _ = await api.call(alice, "GET", f"{BASE}?since=yesterday")
    assert status == 422
    assert (await api.call(alice, "GET", f"{BASE}/999"))[0] == 404

    number = await world.open_issue("alice", "acme/fleet", "by alice")
    status, body, _ = await api.call(
        alice, "PATCH", f"{BASE}/{number}", {"state": "closed", "state_reason": "reopened"}
    )
    assert status == 422
    status, _, _ = await api.call(alice, "PATCH", f"{BASE}/{number}", {"state": "shut"})
    assert status == 422
    # carol (read) may not change alice's issue; her own she may, but her labels are dropped
    status, _, _ = await api.call(carol, "PATCH", f"{BASE}/{number}", {"title": "mine now"})
    assert status == 403
    _, own, _ = await api.call(
        carol, "POST", BASE, {"title": "from carol", "labels": ["upgrade"]}, expect=201
    )
    assert own["labels"] == []
    _, edited, _ = await api.call(
        carol, "PATCH", f"{BASE}/{own['number']}", {"title": "t", "labels": ["x"]}, expect=200
    )
    assert edited["title"] == "t" and edited["labels"] == []


async def test_labels_comments_and_pr_via_issues_endpoint(
    world: Driver, sim: Simulator, api: Api, receiver: Receiver
) -> None:
    alice = world.people["alice"].token
    number = await world.open_issue("alice", "acme/fleet", "tracking", labels=["upgrade"])
    await api.call(alice, "POST", f"{BASE}/{number}/labels", {"labels": ["hold"]}, expect=200)
    _, replaced, _ = await api.call(
        alice, "PATCH", f"{BASE}/{number}", {"labels": ["hold", "later"]}, expect=200
    )
    assert [lbl["name"] for lbl in replaced["labels"]] == ["hold", "later"]
    await api.call(alice, "DELETE", f"{BASE}/{number}/labels/hold", expect=200)
    cid = await world.comment("bob", "acme/fleet", number, "/hold")
    _, comments, _ = await api.call(alice, "GET", f"{BASE}/{number}/comments", expect=200)
    assert [c["id"] for c in comments] == [cid]
    assert comments[0]["html_url"].endswith(f"/issues/{number}#issuecomment-{cid}")

    await world.push("alice", "acme/fleet", "feature", {"clusters/dev.yaml": "a: 3\n"})
    pr = await world.open_pr("alice", "acme/fleet", head="feature", base="main", title="a PR")
    _, closed, _ = await api.call(
        alice, "PATCH", f"{BASE}/{pr}", {"state": "closed", "title": "a PR, closed"}, expect=200
    )
    assert closed["state"] == "closed" and "pull_request" in closed
    assert sim.world.pulls["acme/fleet"][pr].title == "a PR, closed"
    await sim.wait_for_webhooks()

    actions = [p["action"] for p in receiver.of("issues")]
    assert actions == ["opened", "labeled", "labeled", "unlabeled", "labeled", "unlabeled"]
    made = receiver.of("issue_comment", "created")
    assert made[-1]["issue"]["number"] == number and "pull_request" not in made[-1]["issue"]
    assert [p["action"] for p in receiver.of("pull_request") if p["number"] == pr][-2:] == [
        "edited",
        "closed",
    ]
