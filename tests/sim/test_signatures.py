"""Commit verification computed from real SSH and OpenPGP signatures against registered keys."""

from __future__ import annotations

from bot.sim import Driver, Simulator

from .conftest import Api


async def _reason(world: Driver, api: Api, sha: str) -> str:
    _, body, _ = await api.call(
        world.people["alice"].token, "GET", f"/repos/acme/fleet/commits/{sha}", expect=200
    )
    verification = body["commit"]["verification"]
    if verification["verified"]:
        assert verification["signature"] and verification["payload"] and verification["verified_at"]
    return str(verification["reason"])


async def test_ssh_signatures(world: Driver, sim: Simulator, api: Api) -> None:
    key = world.ssh_key("alice")
    stranger = world.ssh_key("bob", register=False)
    signed = await world.push("alice", "acme/fleet", "s1", {"a": "1\n"}, sign=key)
    assert await _reason(world, api, signed) == "valid"
    unsigned = await world.push("alice", "acme/fleet", "s2", {"a": "2\n"})
    assert await _reason(world, api, unsigned) == "unsigned"
    unknown = await world.push("bob", "acme/fleet", "s3", {"a": "3\n"}, sign=stranger)
    assert await _reason(world, api, unknown) == "unknown_key"
    wrong_email = await world.push(
        "alice", "acme/fleet", "s4", {"a": "4\n"}, sign=key, committer_email="someone@else.example"
    )
    assert await _reason(world, api, wrong_email) == "bad_email"
    sim.add_email("alice", "alice@work.example", verified=False)
    unverified = await world.push(
        "alice", "acme/fleet", "s5", {"a": "5\n"}, sign=key, committer_email="alice@work.example"
    )
    assert await _reason(world, api, unverified) == "unverified_email"
    # the payload GitHub reports is exactly what was signed: the commit without its gpgsig header
    _, body, _ = await api.call(world.people["alice"].token, "GET", f"/repos/acme/fleet/git/commits/{signed}")
    assert "gpgsig" not in body["verification"]["payload"]
    assert body["verification"]["signature"].startswith("-----BEGIN SSH SIGNATURE-----")


async def test_gpg_signatures(world: Driver, api: Api) -> None:
    key = world.gpg_key("bob")
    signed = await world.push("bob", "acme/fleet", "g1", {"b": "1\n"}, sign=key)
    assert await _reason(world, api, signed) == "valid"
    unregistered = world.gpg_key("carol", register=False)
    foreign = await world.push("bob", "acme/fleet", "g3", {"b": "3\n"}, sign=unregistered)
    assert await _reason(world, api, foreign) == "unknown_key"
