"""The driver as the demo and end-to-end tests use it: a directory pushed, a PR played, its conversation."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.sim import Driver, Simulator
from bot.sim.schemas import WebhookSchemas

from .conftest import Receiver


async def test_push_dir_review_request_and_conversation(
    world: Driver, sim: Simulator, tmp_path: Path, receiver: Receiver, hook_schemas: WebhookSchemas
) -> None:
    fleet = tmp_path / "fleet"
    (fleet / "clusters" / "dev").mkdir(parents=True)
    (fleet / "clusters" / "dev" / "cluster.yaml").write_text("name: dev\n")
    (fleet / "README.md").write_text("# the fleet\n")
    sha = await world.push_dir("alice", "acme/fleet", "add-dev", fleet, message="Add dev cluster")
    n = await world.open_pr("alice", "acme/fleet", "add-dev", title="Add dev cluster")
    await world.request_review("alice", "acme/fleet", n, "bob")
    await world.comment("bob", "acme/fleet", n, "/diff")
    await world.approve("bob", "acme/fleet", n, "ship it")
    bot = world.app("acme")
    await world.api(
        bot,
        "POST",
        "/repos/acme/fleet/check-runs",
        {
            "name": "gitops-bot",
            "head_sha": sha,
            "conclusion": "failure",
            "output": {
                "title": "1 problem",
                "summary": "s",
                "annotations": [
                    {
                        "path": "clusters/dev/cluster.yaml",
                        "start_line": 1,
                        "end_line": 1,
                        "annotation_level": "failure",
                        "message": "version missing",
                    }
                ],
            },
        },
    )
    text = world.conversation("acme/fleet", n)
    assert text.splitlines()[0] == "#1 Add dev cluster  [open]  alice wants to merge add-dev into main"
    assert "--- bob commented:\n/diff" in text
    assert "--- bob reviewed (approved) at " + sha[:7] + ":\nship it" in text
    assert "[✘] gitops-bot: failure — 1 problem" in text
    assert "clusters/dev/cluster.yaml:1 failure: version missing" in text
    requested = receiver.of("pull_request", "review_requested")
    assert requested and requested[0]["requested_reviewer"]["login"] == "bob"
    assert hook_schemas.errors("pull_request", "review_requested", requested[0]) == []
    files = await world.api("alice", "GET", f"/repos/acme/fleet/pulls/{n}/files")
    assert {f["filename"] for f in files} == {"clusters/dev/cluster.yaml", "README.md"}


async def test_check_run_buttons_send_rerequested_and_requested_action(
    world: Driver, sim: Simulator, receiver: Receiver, hook_schemas: WebhookSchemas
) -> None:
    sha = await world.push("alice", "acme/fleet", "btn", {"b.txt": "b\n"})
    n = await world.open_pr("alice", "acme/fleet", "btn")
    bot = world.app("acme")
    action = {"label": "Re-validate", "description": "Run the checks again", "identifier": "revalidate"}
    await world.api(
        bot,
        "POST",
        "/repos/acme/fleet/check-runs",
        {
            "name": "gitops-bot",
            "head_sha": sha,
            "conclusion": "failure",
            "actions": [action],
            "output": {"title": "t", "summary": "s"},
        },
    )
    await world.rerun_check("bob", "acme/fleet", n, "gitops-bot")
    await world.click_check_action("bob", "acme/fleet", n, "gitops-bot", "revalidate")
    rerequested = receiver.of("check_run", "rerequested")
    clicked = receiver.of("check_run", "requested_action")
    assert rerequested[0]["sender"]["login"] == "bob"
    assert clicked[0]["requested_action"] == {"identifier": "revalidate"}
    for payload in rerequested + clicked:
        assert hook_schemas.errors("check_run", payload["action"], payload) == []
    with pytest.raises(ValueError, match="no action"):
        sim.request_check_action(sim.world.runs[max(sim.world.runs)].id, "nope", "bob")
