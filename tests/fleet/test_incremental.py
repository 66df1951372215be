"""After a push, the incremental collection of a branch equals a full one (real git, kustomize, Gatekeeper).

Pushes to ``env/prod`` of examples/fleet: one cluster's values (a ResourceQuota in its Flux
folder), a shared base every cluster deploys, a policy constraint; and two that fall back to a
full collection: a cluster request (an ApplicationSet git generator reads those files) and a
cluster's ``cluster-info`` ConfigMap (discovery reads Flux variables).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.domain.fleet import ClusterFacts
from bot.fleet import collect
from bot.render_runtime.cache import RenderCache

EXAMPLE = Path(__file__).parents[2] / "examples" / "fleet"
KEY = b"k" * 32
QUOTA = "clusters/prod/prod-use1/flux/quota.yaml"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def _push(repo: Path, rel: str, old: str, new: str) -> None:
    """Commit one edit of ``rel`` on env/prod."""
    path = repo / rel
    text = path.read_text()
    assert old in text, (rel, old)
    path.write_text(text.replace(old, new))
    _git(repo, "commit", "-qam", f"edit {rel}")


@pytest.mark.slow
def test_incremental_equals_full_after_each_kind_of_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, repo)
    (repo / QUOTA).write_text(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: pods\n  namespace: default\n"
        'spec:\n  hard:\n    pods: "200"\n'
    )
    _git(repo, "init", "-q", "-b", "env/prod")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "fleet")
    cache = RenderCache()
    discovered = [0]
    real = collect.discover

    def counting(*args: Any, **kwargs: Any) -> Any:
        discovered[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(collect, "discover", counting)

    def both() -> tuple[dict[str, ClusterFacts], bool]:
        """The incremental collection (checked equal to a full one) and whether it discovered."""
        git_dir, before = repo / ".git", discovered[0]
        inc, env = collect.collect_branch(git_dir, "o/fleet", "env/prod", secret_key=KEY, cache=cache)
        rediscovered = discovered[0] > before
        full, env_full = collect.collect_branch(
            git_dir, "o/fleet", "env/prod", secret_key=KEY, cache=RenderCache(), incremental=False
        )
        assert inc == full and env == env_full
        return {c.cluster: c for c in inc}, rediscovered

    by, _ = both()
    assert {"prod-use1", "prod-euw1"} <= set(by)

    # one cluster's values: only that cluster is collected again
    _push(repo, QUOTA, '"200"', '"300"')
    now, rediscovered = both()
    assert not rediscovered and [n for n in now if now[n] is not by[n]] == ["prod-use1"]
    by = now

    # a shared base every prod cluster deploys (Flux's infrastructure): each again, a new violation
    _push(repo, "common/addons/namespaces.yaml", "  labels:\n    owner: platform\n", "")
    now, rediscovered = both()
    assert not rediscovered
    for name in ("prod-use1", "prod-euw1"):
        assert now[name] is not by[name] and "cert-manager" in {v.name for v in now[name].violations}
    by = now

    # a policy change: every cluster evaluated again, without discovering the tree again
    _push(
        repo,
        "common/policies/constraints/namespaces-must-have-owner.yaml",
        "Every namespace needs",
        "Each namespace needs",
    )
    now, rediscovered = both()
    assert not rediscovered and all(now[n] is not by[n] for n in now)
    assert any(v.message.startswith("Each") for v in now["prod-use1"].violations)
    by = now

    # a cluster request, which the cluster-requests ApplicationSet's git generator reads: all again
    _push(repo, "clusters/prod/prod-use1/cluster.yaml", 'version: "1.34"', 'version: "1.29"')
    now, rediscovered = both()
    assert rediscovered and now["prod-use1"].version == "1.29"
    by = now

    # what discovery reads (Flux variables in a ConfigMap): discovered again, still equal
    _push(repo, "clusters/prod/prod-euw1/flux/cluster-info.yaml", "eu-west-1", "eu-west-2")
    now, rediscovered = both()
    assert rediscovered
