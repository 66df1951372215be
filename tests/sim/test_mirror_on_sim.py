"""The production git mirror (bot.git.mirror) against the simulator's smart HTTP, as the bot runs it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.git.files import GitError, git, rev_parse
from bot.git.mirror import MirrorCache
from bot.sim import Driver, Simulator

from .conftest import Receiver


async def test_mirror_syncs_pull_refs_and_pushes_with_an_installation_token(
    world: Driver, sim: Simulator, receiver: Receiver, tmp_path: Path
) -> None:
    head = await world.push("alice", "acme/fleet", "feature", {"clusters/dev.yaml": "a: 2\n"})
    n = await world.open_pr("alice", "acme/fleet", "feature")
    inst = sim.world.installation_for("acme")
    assert inst is not None
    token = sim.installation_token(inst.id).value
    cache = MirrorCache(tmp_path / "mirrors", sim.base_url + "/{full_name}.git")

    with pytest.raises(GitError) as refused:
        await asyncio.to_thread(cache.sync, "acme/fleet", None)
    assert token not in str(refused.value)

    path = await asyncio.to_thread(
        cache.sync, "acme/fleet", token, [f"refs/pull/{n}/head", f"refs/pull/{n}/merge"]
    )
    assert rev_parse(path, f"refs/pull/{n}/head") == head
    assert rev_parse(path, f"refs/pull/{n}/merge^2") == head

    # the bot pushes a branch it made in its mirror; GitHub (the simulator) announces it
    git(path, "update-ref", "refs/heads/promote/dev-to-staging", head)
    await asyncio.to_thread(cache.push, "acme/fleet", token, ["refs/heads/promote/dev-to-staging"])
    await sim.wait_for_webhooks()
    pushed = [p for p in receiver.of("push") if p["ref"] == "refs/heads/promote/dev-to-staging"]
    assert pushed and pushed[0]["after"] == head and pushed[0]["pusher"]["name"] == sim.bot_login
