"""``gitops-bot sim`` as a subprocess: it prints how to reach it, serves, and stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import jwt

ROOT = Path(__file__).resolve().parents[2]


async def test_sim_command_serves_until_terminated(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet"
    (fleet / "clusters").mkdir(parents=True)
    (fleet / "clusters" / "dev.yaml").write_text("name: dev\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "sim",
            "--data",
            str(tmp_path / "data"),
            "--user",
            "alice",
            "--org",
            "acme",
            "--repo",
            "acme/fleet",
            "--install",
            "acme",
            "--app-id",
            "77",
            "--push",
            f"acme/fleet={fleet}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["app_id"] == 77 and info["repositories"]["acme/fleet"].endswith("/acme/fleet.git")
        key = Path(info["private_key_path"]).read_text()
        token = info["user_tokens"]["alice"]
        async with aiohttp.ClientSession() as s:
            async with s.get(
                f"{info['base_url']}/repos/acme/fleet", headers={"Authorization": f"token {token}"}
            ) as r:
                assert r.status == 200 and (await r.json())["full_name"] == "acme/fleet"
            app_jwt = jwt.encode({"iat": 0, "exp": 0, "iss": "77"}, key, algorithm="RS256")
            async with s.get(f"{info['base_url']}/app", headers={"Authorization": f"Bearer {app_jwt}"}) as r:
                assert r.status == 401  # expired: iat/exp are checked
            url = f"{info['base_url']}/repos/acme/fleet/contents/clusters/dev.yaml"
            headers = {"Authorization": f"token {token}", "Accept": "application/vnd.github.raw"}
            async with s.get(url, headers=headers) as r:
                assert (r.status, await r.text()) == (200, "name: dev\n")
            assert len(info["pushed"]["acme/fleet"]) == 40
            async with s.get(f"{info['base_url']}/_sim/info") as r:
                assert (await r.json())["installations"] == info["installations"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        out = proc.stderr.read() if proc.stderr else ""
        assert "ghp_" not in out  # tokens go to stdout only, never to the log stream
