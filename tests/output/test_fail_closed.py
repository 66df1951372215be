"""Fail closed: content the bot cannot read is a blocking finding at its own file, never a pass."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.domain.validate.base import MAX_TEXT_BYTES, parse_docs
from tests.render.conftest import commit, git

MakeRepo = Callable[..., Path]

APP = {
    "apps/web/kustomization.yaml": "resources:\n  - deployment.yaml\n",
    "apps/web/deployment.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: web\n"
        "spec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n"
        "      labels: {app: web}\n    spec:\n      containers:\n"
        "        - name: web\n          image: nginx:1.27\n"
    ),
}


def alias_bomb() -> str:
    """Billion laughs: nine levels of nine aliases, 80 aliases in the text, 9**9 nodes expanded."""
    lines = ['  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\n  namespace: web\ndata:\n"
        + "\n".join(lines)
        + "\n"
    )


def check_json(capsys: pytest.CaptureFixture[str], repo: Path) -> tuple[int, dict]:
    code = main(["check", "--repo", str(repo), "--base", "main", "--head", "pr", "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def pr(repo: Path, files: dict[str, str | None]) -> None:
    git(repo, "checkout", "-q", "-b", "pr")
    commit(repo, files, "pr")
    git(repo, "checkout", "-q", "main")


def test_alias_bomb_is_a_finding_on_its_own_file(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(APP)
    pr(
        repo,
        {
            "apps/web/lol.yaml": alias_bomb(),
            "apps/web/kustomization.yaml": "resources:\n  - deployment.yaml\n  - lol.yaml\n",
        },
    )
    code, data = check_json(capsys, repo)
    assert code == 1
    blocking = [f for f in data["findings"] if f["severity"] == "error"]
    bomb = [f for f in blocking if "alias bomb" in f["message"]]
    assert [f["path"] for f in bomb] == ["apps/web/lol.yaml"]
    # kustomize refuses the file too, at the kustomization that lists it
    assert {f["path"] for f in blocking} <= {"apps/web/lol.yaml", "apps/web/kustomization.yaml"}
    assert not any(f["rule"] == "internal" for f in data["findings"])


def test_parse_docs_turns_an_expanding_bomb_into_a_finding() -> None:
    docs, problems = parse_docs(alias_bomb(), "lol.yaml")
    assert docs == [] and [p.rule for p in problems] == ["yaml.syntax"]
    assert problems[0].path == "lol.yaml" and problems[0].blocking


@pytest.mark.parametrize("name", ["apps/web/big.yaml", "apps/web/notes.txt"])
def test_a_file_over_the_size_limit_blocks_at_that_file(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    repo = make_repo(APP)
    filler = "    " + "A" * 95 + "\n"
    big = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n  namespace: web\ndata:\n  blob: |\n"
    big += filler * (MAX_TEXT_BYTES // len(filler) + 10)
    pr(repo, {name: big})
    code, data = check_json(capsys, repo)
    assert code == 1
    too_large = [f for f in data["findings"] if f["rule"] == "files.too-large"]
    assert [(f["path"], f["severity"]) for f in too_large] == [(name, "error")]
    assert "MiB" in too_large[0]["message"] and too_large[0]["hint"]


def test_binary_yaml_blocks_and_other_binaries_pass(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(APP)
    git(repo, "checkout", "-q", "-b", "pr")
    (repo / "apps/web/x.yaml").write_bytes(b"kind: \x00\x01\x02")
    (repo / "apps/web/logo.png").write_bytes(b"\x89PNG\x00\x00")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "binary")
    git(repo, "checkout", "-q", "main")
    code, data = check_json(capsys, repo)
    assert code == 1
    assert {f["path"] for f in data["findings"] if f["severity"] == "error"} == {"apps/web/x.yaml"}
