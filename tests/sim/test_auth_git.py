"""App JWT flow, token checks, and git over smart HTTP with and without credentials."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.sim import Driver, Simulator

from .conftest import Api

ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "HOME": "/nonexistent",
    "PATH": "/usr/bin:/bin",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _jwt(key_pem: str, app_id: int, iat_offset: int = -30, exp_offset: int = 540) -> str:
    now = int(time.time())
    return pyjwt.encode(
        {"iat": now + iat_offset, "exp": now + exp_offset, "iss": str(app_id)}, key_pem, algorithm="RS256"
    )


async def test_good_jwt_gets_an_installation_token_that_works(
    world: Driver, sim: Simulator, api: Api
) -> None:
    inst = sim.world.installation_for("acme")
    assert inst is not None
    token_jwt = _jwt(sim.private_key_pem, sim.world.app_id)
    _, body, _ = await api.call(token_jwt, "POST", f"/app/installations/{inst.id}/access_tokens", expect=201)
    assert body["token"].startswith("ghs_") and body["expires_at"].endswith("Z")
    _, repo, headers = await api.call(body["token"], "GET", "/repos/acme/fleet", expect=200)
    assert repo["full_name"] == "acme/fleet"
    assert int(headers["X-RateLimit-Remaining"]) < int(headers["X-RateLimit-Limit"])


async def test_bad_jwts_are_rejected_with_401(world: Driver, sim: Simulator, api: Api) -> None:
    inst = sim.world.installation_for("acme")
    assert inst is not None
    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    cases = {
        "wrong key": _jwt(other, sim.world.app_id),
        "expired": _jwt(sim.private_key_pem, sim.world.app_id, iat_offset=-1200, exp_offset=-600),
        "wrong issuer": _jwt(sim.private_key_pem, 999),
        "too long": _jwt(sim.private_key_pem, sim.world.app_id, exp_offset=3600),
        "garbage": "eyJhbGciOiJSUzI1NiJ9.e30.AAAA",
    }
    for name, token in cases.items():
        status, body, _ = await api.call(token, "POST", f"/app/installations/{inst.id}/access_tokens")
        assert status == 401, name
        assert body["message"] and body["documentation_url"], name
    # an installation token is no JWT, and a JWT is no installation token
    itoken = sim.installation_token(inst.id).value
    assert (await api.call(itoken, "GET", "/app"))[0] == 401
    assert (await api.call(sim.app_jwt(), "GET", "/repos/acme/fleet"))[0] == 401


async def test_tokens_expire_and_unknown_ones_are_bad_credentials(
    world: Driver, sim: Simulator, api: Api
) -> None:
    inst = sim.world.installation_for("acme")
    assert inst is not None
    token = sim.installation_token(inst.id)
    token.expires_at = time.time() - 1
    status, body, _ = await api.call(token.value, "GET", "/repos/acme/fleet")
    assert (status, body["message"]) == (401, "Bad credentials")
    status, body, _ = await api.call(None, "GET", "/repos/acme/fleet")
    assert (status, body["message"]) == (401, "Requires authentication")


async def test_permissions_decide_what_a_user_sees_and_does(world: Driver, sim: Simulator, api: Api) -> None:
    world.user("mallory")
    mallory = world.people["mallory"].token
    assert (await api.call(mallory, "GET", "/repos/acme/fleet"))[0] == 404  # private: not even visible
    carol = world.people["carol"].token
    assert (await api.call(carol, "GET", "/repos/acme/fleet"))[0] == 200
    status, _, _ = await api.call(
        carol, "POST", "/repos/acme/fleet/git/refs", {"ref": "refs/heads/x", "sha": "0" * 40}
    )
    assert status == 403


async def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run git off the event loop (the simulator answers on the same loop)."""
    return await asyncio.to_thread(
        subprocess.run, ["git", *args], cwd=cwd, env=ENV, capture_output=True, check=False
    )


async def test_git_clone_and_push_over_http_need_a_token(
    world: Driver, sim: Simulator, tmp_path: Path
) -> None:
    url = sim.git_url("acme/fleet")
    anon = await _git(tmp_path, "clone", "-q", url, "anon")
    assert anon.returncode != 0 and not (tmp_path / "anon").exists()
    inst = sim.world.installation_for("acme")
    assert inst is not None
    token = sim.installation_token(inst.id).value
    authed = url.replace("http://", f"http://x-access-token:{token}@")
    assert (await _git(tmp_path, "clone", "-q", authed, "bot")).returncode == 0
    assert (tmp_path / "bot" / "clusters" / "dev.yaml").read_text() == "a: 1\n"
    # the reader may clone but not push
    carol = world.people["carol"].token
    reader = url.replace("http://", f"http://carol:{carol}@")
    assert (await _git(tmp_path, "clone", "-q", reader, "carol")).returncode == 0
    (tmp_path / "carol" / "f.txt").write_text("x\n")
    await _git(tmp_path / "carol", "add", "f.txt")
    await _git(tmp_path / "carol", "-c", "user.name=c", "-c", "user.email=c@x", "commit", "-qm", "x")
    refused = await _git(tmp_path / "carol", "push", "-q", "origin", "HEAD:refs/heads/carol")
    assert refused.returncode != 0
    assert not (sim.world.repos["acme/fleet"].path / "refs" / "heads" / "carol").exists()
    # the App's token pushes, and the push fires a push webhook
    (tmp_path / "bot" / "g.txt").write_text("g\n")
    await _git(tmp_path / "bot", "add", "g.txt")
    await _git(tmp_path / "bot", "-c", "user.name=bot", "-c", "user.email=bot@x", "commit", "-qm", "g")
    assert (await _git(tmp_path / "bot", "push", "-q", "origin", "HEAD:refs/heads/from-bot")).returncode == 0
    await sim.wait_for_webhooks()
    assert any(d.event == "push" and b"refs/heads/from-bot" in d.body for d in sim.world.deliveries)


async def test_pr_head_ref_follows_pushes(world: Driver, sim: Simulator) -> None:
    first = await world.push("alice", "acme/fleet", "feat", {"a.txt": "1\n"})
    n = await world.open_pr("alice", "acme/fleet", "feat")
    repo = sim.world.repos["acme/fleet"]
    from bot.git.files import rev_parse
    from bot.sim.gitops import commit_info, refs

    assert rev_parse(repo.path, f"refs/pull/{n}/head") == first
    second = await world.push("alice", "acme/fleet", "feat", {"a.txt": "2\n"})
    assert rev_parse(repo.path, f"refs/pull/{n}/head") == second
    assert sim.pull("acme/fleet", n).head_sha == second
    # refs/pull/N/merge is the test merge of head into base, and disappears on a conflict
    merge = commit_info(repo.path, rev_parse(repo.path, f"refs/pull/{n}/merge"))
    assert merge.parents == [sim.pull("acme/fleet", n).base_sha, second]
    await world.push("bob", "acme/fleet", "main", {"a.txt": "conflict\n"})
    assert f"refs/pull/{n}/merge" not in refs(repo.path)


async def test_installation_token_limited_to_repositories(world: Driver, sim: Simulator, api: Api) -> None:
    world.repo("acme/other")
    inst = sim.world.installation_for("acme")
    assert inst is not None
    url = f"/app/installations/{inst.id}/access_tokens"
    _, body, _ = await api.call(sim.app_jwt(), "POST", url, {"repositories": ["fleet"]}, expect=201)
    assert [r["name"] for r in body["repositories"]] == ["fleet"]
    assert body["repository_selection"] == "selected"
    assert (await api.call(body["token"], "GET", "/repos/acme/fleet"))[0] == 200
    assert (await api.call(body["token"], "GET", "/repos/acme/other"))[0] == 404
    status, err, _ = await api.call(sim.app_jwt(), "POST", url, {"repositories": ["nope"]})
    assert status == 422 and "nope" in err["message"]
