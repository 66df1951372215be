"""Contract tests: the simulator serves exactly the subset's routes, with schema-valid answers."""

from __future__ import annotations

import base64
from typing import Any

from bot.sim import Driver, Simulator
from bot.sim.schemas import OpenAPI, WebhookSchemas

from .conftest import Api, Receiver


def test_every_served_route_is_in_the_subset_with_the_same_method(sim: Simulator, spec: OpenAPI) -> None:
    documented = {op.operation_id: (op.method, op.template) for op in spec.operations}
    served = {op.operation_id: (op.method, op.template) for op in sim.api.operations}
    assert set(sim._handlers) == set(documented)
    assert served == documented


async def test_unknown_route_gets_githubs_404(world: Driver, api: Api) -> None:
    token = world.people["alice"].token
    status, body, _ = await api.call(token, "GET", "/repos/acme/fleet/hooks")
    assert status == 404
    assert body["message"] == "Not Found" and "documentation_url" in body
    status, _, _ = await api.call(token, "DELETE", "/repos/acme/fleet/pulls/1")
    assert status == 404


async def test_all_operations_answer_schema_valid(
    world: Driver, sim: Simulator, api: Api, spec: OpenAPI
) -> None:
    alice = world.people["alice"].token
    bob = world.people["bob"].token
    jwt = sim.app_jwt()
    inst = sim.world.installation_for("acme")
    assert inst is not None

    _, tok, _ = await api.call(jwt, "POST", f"/app/installations/{inst.id}/access_tokens", {}, expect=201)
    itoken = tok["token"]
    await api.call(jwt, "GET", "/app", expect=200)
    await api.call(jwt, "GET", "/repos/acme/fleet/installation", expect=200)
    await api.call(alice, "GET", "/rate_limit", expect=200)
    await api.call(itoken, "GET", "/orgs/acme/teams/platform/memberships/bob", expect=200)
    await api.call(itoken, "GET", "/orgs/acme/teams/platform/memberships/carol", expect=404)

    await api.call(itoken, "GET", "/repos/acme/fleet", expect=200)
    await api.call(itoken, "GET", "/repos/acme/fleet/branches/main", expect=200)
    await api.call(itoken, "GET", "/repos/acme/fleet/branches/main/protection", expect=404)
    sim.protect_branch("acme/fleet", "main", {"required_signatures": {"enabled": True}})
    await api.call(itoken, "GET", "/repos/acme/fleet/branches/main/protection", expect=200)
    _, perm, _ = await api.call(itoken, "GET", "/repos/acme/fleet/collaborators/carol/permission", expect=200)
    assert perm["permission"] == "read" and perm["role_name"] == "read"
    _, content, _ = await api.call(
        itoken, "GET", "/repos/acme/fleet/contents/clusters/dev.yaml?ref=main", expect=200
    )
    assert base64.b64decode(content["content"]) == b"a: 1\n"
    _, listing, _ = await api.call(itoken, "GET", "/repos/acme/fleet/contents/clusters", expect=200)
    assert [e["name"] for e in listing] == ["dev.yaml"]

    head = await world.push(
        "alice", "acme/fleet", "feature", {"clusters/dev.yaml": "a: 2\n", "new.yaml": "b: 1\n"}
    )
    _, commits, _ = await api.call(itoken, "GET", "/repos/acme/fleet/commits?sha=feature", expect=200)
    assert commits[0]["sha"] == head
    _, commit, _ = await api.call(itoken, "GET", f"/repos/acme/fleet/commits/{head}", expect=200)
    assert {f["filename"] for f in commit["files"]} == {"clusters/dev.yaml", "new.yaml"}
    _, cmp, _ = await api.call(itoken, "GET", "/repos/acme/fleet/compare/main...feature", expect=200)
    assert cmp["status"] == "ahead" and cmp["ahead_by"] == 1

    await api.call(
        itoken,
        "POST",
        f"/repos/acme/fleet/statuses/{head}",
        {"state": "pending", "context": "ci"},
        expect=201,
    )
    await api.call(
        itoken,
        "POST",
        f"/repos/acme/fleet/statuses/{head}",
        {"state": "success", "context": "ci"},
        expect=201,
    )
    _, combined, _ = await api.call(itoken, "GET", f"/repos/acme/fleet/commits/{head}/status", expect=200)
    assert combined["state"] == "success" and combined["total_count"] == 1
    _, statuses, _ = await api.call(itoken, "GET", f"/repos/acme/fleet/commits/{head}/statuses", expect=200)
    assert [s["state"] for s in statuses] == ["success", "pending"]

    # git data: blob -> tree -> commit -> ref
    _, blob, _ = await api.call(
        itoken, "POST", "/repos/acme/fleet/git/blobs", {"content": "hello\n", "encoding": "utf-8"}, expect=201
    )
    await api.call(itoken, "GET", f"/repos/acme/fleet/git/blobs/{blob['sha']}", expect=200)
    _, base_commit, _ = await api.call(itoken, "GET", f"/repos/acme/fleet/git/commits/{head}", expect=200)
    _, tree, _ = await api.call(
        itoken,
        "POST",
        "/repos/acme/fleet/git/trees",
        {
            "base_tree": base_commit["tree"]["sha"],
            "tree": [{"path": "x/hello.txt", "mode": "100644", "type": "blob", "sha": blob["sha"]}],
        },
        expect=201,
    )
    _, full, _ = await api.call(
        itoken, "GET", f"/repos/acme/fleet/git/trees/{tree['sha']}?recursive=1", expect=200
    )
    assert "x/hello.txt" in {e["path"] for e in full["tree"]}
    _, newc, _ = await api.call(
        itoken,
        "POST",
        "/repos/acme/fleet/git/commits",
        {"message": "bot commit", "tree": tree["sha"], "parents": [head]},
        expect=201,
    )
    await api.call(
        itoken,
        "POST",
        "/repos/acme/fleet/git/refs",
        {"ref": "refs/heads/bot-branch", "sha": newc["sha"]},
        expect=201,
    )
    _, ref, _ = await api.call(itoken, "GET", "/repos/acme/fleet/git/ref/heads/bot-branch", expect=200)
    assert ref["object"]["sha"] == newc["sha"]
    await api.call(
        itoken,
        "PATCH",
        "/repos/acme/fleet/git/refs/heads/bot-branch",
        {"sha": head, "force": True},
        expect=200,
    )
    await api.call(itoken, "DELETE", "/repos/acme/fleet/git/refs/heads/bot-branch", expect=204)

    # pull request life
    _, pr, _ = await api.call(
        alice,
        "POST",
        "/repos/acme/fleet/pulls",
        {"title": "Bump dev", "head": "feature", "base": "main", "body": "please"},
        expect=201,
    )
    n = pr["number"]
    await api.call(
        alice,
        "POST",
        "/repos/acme/fleet/pulls",
        {"title": "again", "head": "feature", "base": "main"},
        expect=422,
    )
    await api.call(itoken, "GET", "/repos/acme/fleet/pulls?state=open", expect=200)
    await api.call(itoken, "GET", f"/repos/acme/fleet/pulls/{n}", expect=200)
    await api.call(alice, "PATCH", f"/repos/acme/fleet/pulls/{n}", {"title": "Bump dev cluster"}, expect=200)
    _, files, _ = await api.call(itoken, "GET", f"/repos/acme/fleet/pulls/{n}/files", expect=200)
    assert len(files) == 2
    await api.call(itoken, "GET", f"/repos/acme/fleet/pulls/{n}/commits", expect=200)
    await api.call(bob, "POST", f"/repos/acme/fleet/pulls/{n}/reviews", {"event": "APPROVE"}, expect=200)
    await api.call(itoken, "GET", f"/repos/acme/fleet/pulls/{n}/reviews", expect=200)
    await api.call(itoken, "GET", f"/repos/acme/fleet/pulls/{n}/requested_reviewers", expect=200)

    _, c, _ = await api.call(
        itoken, "POST", f"/repos/acme/fleet/issues/{n}/comments", {"body": "hi"}, expect=201
    )
    await api.call(
        itoken, "PATCH", f"/repos/acme/fleet/issues/comments/{c['id']}", {"body": "hi!"}, expect=200
    )
    await api.call(itoken, "GET", f"/repos/acme/fleet/issues/{n}/comments", expect=200)
    await api.call(
        itoken,
        "POST",
        f"/repos/acme/fleet/issues/comments/{c['id']}/reactions",
        {"content": "eyes"},
        expect=201,
    )
    await api.call(
        itoken,
        "POST",
        f"/repos/acme/fleet/issues/comments/{c['id']}/reactions",
        {"content": "eyes"},
        expect=200,
    )
    await api.call(itoken, "DELETE", f"/repos/acme/fleet/issues/comments/{c['id']}", expect=204)
    await api.call(
        itoken, "POST", f"/repos/acme/fleet/issues/{n}/labels", {"labels": ["env/dev"]}, expect=200
    )
    await api.call(itoken, "POST", f"/repos/acme/fleet/issues/{n}/labels", ["hold"], expect=200)
    _, labels, _ = await api.call(itoken, "DELETE", f"/repos/acme/fleet/issues/{n}/labels/hold", expect=200)
    assert [x["name"] for x in labels] == ["env/dev"]
    _, issue, _ = await api.call(
        itoken, "POST", "/repos/acme/fleet/issues", {"title": "t", "labels": ["upgrade"]}, expect=201
    )
    await api.call(itoken, "GET", f"/repos/acme/fleet/issues/{issue['number']}", expect=200)
    await api.call(
        itoken, "PATCH", f"/repos/acme/fleet/issues/{issue['number']}", {"state": "closed"}, expect=200
    )
    _, listed, _ = await api.call(itoken, "GET", "/repos/acme/fleet/issues?state=all", expect=200)
    assert {i["number"] for i in listed} == {n, issue["number"]}

    _, run, _ = await api.call(
        itoken,
        "POST",
        "/repos/acme/fleet/check-runs",
        {"name": "gitops-bot", "head_sha": head, "status": "in_progress"},
        expect=201,
    )
    await api.call(
        itoken,
        "PATCH",
        f"/repos/acme/fleet/check-runs/{run['id']}",
        {"conclusion": "success", "output": {"title": "ok", "summary": "all good"}},
        expect=200,
    )
    _, runs, _ = await api.call(itoken, "GET", f"/repos/acme/fleet/commits/{head}/check-runs", expect=200)
    assert runs["total_count"] == 1 and runs["check_runs"][0]["conclusion"] == "success"

    await api.call(itoken, "POST", "/repos/acme/fleet/merge-upstream", {"branch": "main"}, expect=422)
    await world.push("bob", "acme/fleet", "other", {"other.txt": "o\n"}, base="main")
    await api.call(
        itoken, "POST", "/repos/acme/fleet/merges", {"base": "other", "head": "feature"}, expect=201
    )
    await api.call(bob, "PUT", f"/repos/acme/fleet/pulls/{n}/merge", {"merge_method": "merge"}, expect=200)

    await sim.wait_for_webhooks()
    _, deliveries, _ = await api.call(jwt, "GET", "/app/hook/deliveries", expect=200)
    await api.call(jwt, "POST", f"/app/hook/deliveries/{deliveries[0]['id']}/attempts", expect=202)

    missing = {op.operation_id for op in spec.operations} - api.covered
    assert missing == set()


async def test_webhook_payloads_validate_against_octokit_schemas(
    world: Driver, sim: Simulator, receiver: Receiver, hook_schemas: WebhookSchemas
) -> None:
    sha = await world.push("alice", "acme/fleet", "feature", {"a.yaml": "a: 1\n"})
    n = await world.open_pr("alice", "acme/fleet", "feature", body=None)
    await world.push("alice", "acme/fleet", "feature", {"a.yaml": "a: 2\n"})
    rid = await world.review("bob", "acme/fleet", n, "REQUEST_CHANGES", "not yet")
    await world.dismiss("alice", "acme/fleet", n, rid, "fixed")
    cid = await world.comment("carol", "acme/fleet", n, "/diff")
    await world.edit_comment("carol", "acme/fleet", cid, "/validate")
    await world.delete_comment("carol", "acme/fleet", cid)
    await world.api("alice", "PATCH", f"/repos/acme/fleet/pulls/{n}", {"body": "now with text"})
    await world.api("alice", "POST", f"/repos/acme/fleet/issues/{n}/labels", {"labels": ["env/prod"]})
    await world.api("alice", "DELETE", f"/repos/acme/fleet/issues/{n}/labels/env%2Fprod")
    await world.close_pr("alice", "acme/fleet", n)
    await world.reopen("alice", "acme/fleet", n)
    app = world.app("acme")
    await world.api(
        app,
        "POST",
        "/repos/acme/fleet/check-runs",
        {
            "name": "gitops-bot",
            "head_sha": sim.pull("acme/fleet", n).head_sha,
            "conclusion": "failure",
            "output": {"title": "t", "summary": "s"},
        },
    )
    await world.api(app, "POST", f"/repos/acme/fleet/statuses/{sha}", {"state": "success", "context": "ci"})
    await world.merge("bob", "acme/fleet", n, "squash")
    await sim.wait_for_webhooks()

    seen = set(receiver.events())
    expected = {
        ("installation", "created"),
        ("push", None),
        ("check_suite", "requested"),
        ("check_suite", "completed"),
        ("pull_request", "opened"),
        ("pull_request", "synchronize"),
        ("pull_request", "edited"),
        ("pull_request", "closed"),
        ("pull_request", "reopened"),
        ("pull_request", "labeled"),
        ("pull_request", "unlabeled"),
        ("pull_request_review", "submitted"),
        ("pull_request_review", "dismissed"),
        ("issue_comment", "created"),
        ("issue_comment", "edited"),
        ("issue_comment", "deleted"),
        ("check_run", "created"),
        ("check_run", "completed"),
        ("status", None),
    }
    assert expected <= seen
    for item in receiver.received:
        payload: dict[str, Any] = item["payload"]
        errors = hook_schemas.errors(item["event"], payload.get("action"), payload)
        assert errors == [], (item["event"], payload.get("action"), errors[:5])
        headers = {k.lower(): v for k, v in item["headers"].items()}
        assert headers["user-agent"].startswith("GitHub-Hookshot/")
        assert headers["x-github-hook-installation-target-type"] == "integration"
        assert headers["x-github-hook-installation-target-id"] == str(sim.world.app_id)
        assert len(headers["x-github-delivery"]) == 36
    merged = receiver.of("pull_request", "closed")[-1]["pull_request"]
    assert merged["merged"] is True and merged["merge_commit_sha"]
    sync = receiver.of("pull_request", "synchronize")[0]
    assert sync["before"] == sha and sync["after"] == sim.pull("acme/fleet", n).head_sha
