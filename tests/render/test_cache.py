"""The render cache: exact keys, shared raw renders, one render for concurrent asks, disk persistence."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bot.domain.model import Finding, Severity
from bot.domain.render import discover
from bot.render_runtime import engine as engine_mod
from bot.render_runtime.cache import RenderCache
from bot.render_runtime.engine import compute_diff, render_target
from tests.render.conftest import KEY, write

FLUX = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"


def _fleet(tmp_path: Path, clusters: int) -> Path:
    files = {
        "apps/web/kustomization.yaml": "resources: [cm.yaml]\n",
        "apps/web/cm.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  c: ${cluster_name}\n"
        ),
    }
    for i in range(clusters):
        files[f"clusters/c{i}/info.yaml"] = (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cluster-info\n  namespace: flux-system\n"
            f"data:\n  cluster_name: c{i}\n"
        )
        files[f"clusters/c{i}/web.yaml"] = (
            FLUX + "metadata:\n  name: web\n  namespace: flux-system\nspec:\n  path: ./apps/web\n"
            "  postBuild:\n    substituteFrom:\n      - kind: ConfigMap\n        name: cluster-info\n"
        )
    write(tmp_path, files)
    return tmp_path


def test_targets_sharing_a_path_share_one_kustomize_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = _fleet(tmp_path, 5)
    builds: list[str] = []
    real = engine_mod.run_kustomize

    def counting(tree: Path, rel_dir: str) -> str:
        builds.append(rel_dir)
        return real(tree, rel_dir)

    monkeypatch.setattr(engine_mod, "run_kustomize", counting)
    result = compute_diff(tree, tree, {}, changed_paths=None, secret_key=KEY)
    assert builds == ["apps/web"]  # 5 targets x base and head: one build
    values = sorted(o.obj["data"]["c"] for o in result.rendered_head)
    assert values == ["c0", "c1", "c2", "c3", "c4"]


def test_cache_key_changes_with_any_input(tmp_path: Path) -> None:
    tree = _fleet(tmp_path, 1)
    cache = RenderCache()
    disc = discover(tree, {}, secret_key=KEY)
    (target,) = disc.targets
    assert disc.scanner is not None
    render_target(tree, target, disc.scanner, secret_key=KEY, cache=cache)
    misses = cache.misses
    render_target(tree, target, disc.scanner, secret_key=KEY, cache=cache)
    assert cache.misses == misses
    write(tree, {"apps/web/cm.yaml": (tree / "apps/web/cm.yaml").read_text().replace("c:", "d:")})
    disc = discover(tree, {}, secret_key=KEY)
    assert disc.scanner is not None
    objects, _ = render_target(tree, disc.targets[0], disc.scanner, secret_key=KEY, cache=cache)
    assert cache.misses > misses and objects[0]["data"] == {"d": "c0"}


def test_concurrent_asks_render_once() -> None:
    cache = RenderCache()
    calls: list[int] = []

    def slow() -> tuple[list[dict[str, object]], list[Finding]]:
        calls.append(1)
        time.sleep(0.05)
        return [{"kind": "X"}], []

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_render("k", slow))) for _ in range(5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and len(results) == 5


def test_disk_cache_survives_a_new_process_state(tmp_path: Path) -> None:
    finding = Finding("render.kustomize", Severity.ERROR, "a/kustomization.yaml", 2, "broken", "fix")
    RenderCache(tmp_path).put("ab" * 32, [{"kind": "ConfigMap"}], [finding])
    again = RenderCache(tmp_path)
    assert again.get("ab" * 32) == ([{"kind": "ConfigMap"}], [finding])
    assert again.get("cd" * 32) is None


def test_memory_cache_is_bounded() -> None:
    cache = RenderCache(max_entries=2)
    for key in ("a", "b", "c"):
        cache.put(key, [], [])
    assert cache.get("a") is None and cache.get("c") == ([], [])
