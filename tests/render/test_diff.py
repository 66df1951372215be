"""Object diffs, noise filtering, secret masking and the GitHub comment / check-run output."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from bot.domain.diff import (
    COMMENT_LIMIT,
    TargetMeta,
    diff_check_output,
    diff_comment_parts,
    diff_objects,
    mask_secrets,
    normalize,
)
from bot.domain.model import Finding, Severity
from bot.domain.render import DiffResult
from tests.conftest import FIXTURES

GOLDEN = FIXTURES / "render" / "golden"
KEY = b"k"


def deploy(name: str, replicas: int, cm: str = "cfg-2g5k8bf7cb", **extra: object) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "web", **extra},
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": cm}}]}]}
            },
        },
    }


def cfgmap(name: str, value: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "web"},
        "data": {"a": value},
    }


def secret(**string_data: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "web"},
        "stringData": string_data,
    }


T = TargetMeta("kustomize/apps/web/overlays/prod", "prod-use1", "prod")


def test_noise_is_filtered() -> None:
    base = [
        deploy(
            "web", 2, resourceVersion="1", uid="u1", generation=3, creationTimestamp="2024-01-01T00:00:00Z"
        ),
        cfgmap("cfg-2g5k8bf7cb", "x"),
    ]
    base[0]["status"] = {"replicas": 2}
    head = [deploy("web", 2, cm="cfg-h8m7tb9c9d"), cfgmap("cfg-h8m7tb9c9d", "x")]
    assert diff_objects(T, base, head) == []
    assert "status" not in normalize(base)[0]


def test_added_removed_changed_with_unified_diff() -> None:
    changes = diff_objects(T, [deploy("web", 2), deploy("old", 1)], [deploy("web", 3), deploy("new", 1)])
    assert [(c.name, c.action) for c in changes] == [("new", "added"), ("old", "removed"), ("web", "changed")]
    web = changes[2]
    assert "-  replicas: 2\n+  replicas: 3\n" in web.diff
    assert web.diff.startswith("--- a/Deployment/web/web\n+++ b/Deployment/web/web\n")
    assert (web.target, web.cluster, web.env, web.api_version) == (T.name, "prod-use1", "prod", "apps/v1")


def test_api_version_bump_is_a_change_not_remove_and_add() -> None:
    old = {"apiVersion": "autoscaling/v2beta2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"}}
    new = {**old, "apiVersion": "autoscaling/v2"}
    (change,) = diff_objects(T, [old], [new])
    assert change.action == "changed" and "+apiVersion: autoscaling/v2\n" in change.diff


def test_secret_values_are_masked_with_a_keyed_hash() -> None:
    plain = mask_secrets(secret(password="hunter2"), KEY)
    encoded = mask_secrets(
        {**secret(), "data": {"password": base64.b64encode(b"hunter2").decode()}, "stringData": None}, KEY
    )
    assert plain["stringData"]["password"] == encoded["data"]["password"]
    assert plain["stringData"]["password"].startswith("<secret hmac:")
    assert "hunter2" not in repr(plain) and "aHVudGVyMg" not in repr(encoded)
    assert mask_secrets(secret(password="hunter2"), b"other-key") != plain
    assert mask_secrets(cfgmap("c", "hunter2"), KEY)["data"]["a"] == "hunter2"


def test_changed_secret_value_is_visible_but_never_shown() -> None:
    base = [mask_secrets(secret(password="old-password-1", user="app"), KEY)]
    head = [mask_secrets(secret(password="new-password-2", token="t0ken-value"), KEY)]
    (change,) = diff_objects(T, base, head)
    assert change.action == "changed"
    assert "-  password: <secret hmac:" in change.diff and "+  password: <secret hmac:" in change.diff
    assert "-  user:" in change.diff and "+  token:" in change.diff
    for value in ("old-password-1", "new-password-2", "t0ken-value", "app\n"):
        assert value not in change.diff


def _result(n_targets: int = 2, big: int = 0) -> DiffResult:
    changes = []
    for i in range(n_targets):
        env = "prod" if i % 2 else "staging"
        meta = TargetMeta(f"argocd/web-{i:02d}", f"{env}-{i:02d}", env)
        base = [deploy("web", 2), cfgmap("cfg", "a" * big)]
        head = [deploy("web", 3 + i), cfgmap("cfg", "b" * big), deploy(f"new-{i}", 1)]
        changes += diff_objects(meta, base, head)
    finding = Finding(
        "render.kustomize",
        Severity.ERROR,
        "apps/web/kustomization.yaml",
        4,
        "kustomize could not build `apps/web`: missing file x.yaml",
        "Fix it | now.",
    )
    return DiffResult(
        changes=changes, findings=[finding], targets_rendered=n_targets, targets_total=n_targets + 3
    )


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; rerun with UPDATE_GOLDEN=1 if intended"


def test_comment_golden() -> None:
    parts = diff_comment_parts(_result(), base_sha="a" * 40, head_sha="b" * 40)
    assert len(parts) == 1 and parts[0].startswith("<!-- gitops-bot:diff part 1/1 -->\n")
    _golden("comment.md", parts[0])


def test_comment_golden_identical_changes_are_grouped() -> None:
    meta = [TargetMeta(f"flux/c{i}/flux-system/addons", f"c{i}", "dev") for i in range(12)]
    changes = [c for m in meta for c in diff_objects(m, [deploy("web", 1)], [deploy("web", 2)])]
    parts = diff_comment_parts(
        DiffResult(changes=changes, targets_rendered=12, targets_total=12),
        base_sha="1234567",
        head_sha="89abcde",
    )
    assert parts[0].count("```diff") == 1 and "same change on 11 more target(s)" in parts[0]
    _golden("comment-grouped.md", parts[0])


def test_comment_golden_no_changes() -> None:
    parts = diff_comment_parts(DiffResult(targets_total=7), base_sha="1234567", head_sha="89abcde")
    _golden("comment-empty.md", parts[0])


def test_check_output_golden() -> None:
    title, summary, text = diff_check_output(_result())
    assert title == "4 objects change on 2 clusters (2 added, 2 changed)"
    _golden("check-output.md", f"# {title}\n\n{summary}\n\n---\n\n{text}\n")


def test_comment_is_split_into_numbered_parts_under_the_limit() -> None:
    result = _result(n_targets=8, big=3000)
    parts = diff_comment_parts(result, base_sha="a" * 40, head_sha="b" * 40, limit=12_000, max_parts=10)
    assert len(parts) > 1
    for i, part in enumerate(parts, 1):
        assert len(part) <= 12_000
        assert part.startswith(f"<!-- gitops-bot:diff part {i}/{len(parts)} -->\n")
    joined = "\n".join(parts)
    for i in range(8):
        assert f"argocd/web-{i:02d}" in joined
    assert "Blast" not in parts[1] and "| Environment |" in parts[0]


def test_too_many_parts_fall_back_to_a_concise_summary() -> None:
    result = _result(n_targets=30, big=3000)
    parts = diff_comment_parts(result, base_sha="a" * 40, head_sha="b" * 40, limit=10_000, max_parts=3)
    assert len(parts) == 1 and len(parts[0]) <= 10_000
    assert "gitops-bot/diff" in parts[0] and "```diff" not in parts[0]
    assert "| prod | prod-29 |" in parts[0]


def test_a_single_huge_target_is_truncated_with_a_note() -> None:
    result = _result(n_targets=1, big=200_000)
    parts = diff_comment_parts(result, base_sha="a" * 40, head_sha="b" * 40)
    assert len(parts) == 1 and len(parts[0]) <= COMMENT_LIMIT
    assert "diff truncated here" in parts[0]
    _, _, text = diff_check_output(result)
    assert len(text) <= 65_535 and "truncated" in text


def test_check_text_stays_under_the_limit_for_a_huge_fleet() -> None:
    result = _result(n_targets=200, big=600)
    _, summary, text = diff_check_output(result)
    assert len(text) <= 65_535 and len(summary) <= 65_535
    assert text.count("```") % 2 == 0


def test_output_is_deterministic() -> None:
    a = diff_comment_parts(_result(5), base_sha="1", head_sha="2")
    b = diff_comment_parts(_result(5), base_sha="1", head_sha="2")
    assert a == b


@pytest.mark.parametrize("fence", ["```", "````"])
def test_backticks_in_a_diff_do_not_break_the_fence(fence: str) -> None:
    base = [cfgmap("c", "plain")]
    head = [cfgmap("c", f"{fence}\nmarkdown")]
    result = DiffResult(changes=diff_objects(T, base, head), targets_rendered=1, targets_total=1)
    part = diff_comment_parts(result, base_sha="1", head_sha="2")[0]
    assert "`" * (len(fence) + 1) + "diff" in part or fence not in part


def test_golden_dir_exists() -> None:
    assert Path(GOLDEN).is_dir()


def test_a_large_blast_radius_is_summarised_per_environment() -> None:
    metas = [
        TargetMeta(f"flux/c{i:03d}/flux-system/apps", f"c{i:03d}", ("dev", "prod")[i % 2]) for i in range(40)
    ]
    changes = [c for m in metas for c in diff_objects(m, [deploy("web", 1)], [deploy("web", 2)])]
    part = diff_comment_parts(
        DiffResult(changes=changes, targets_rendered=40, targets_total=40), base_sha="1", head_sha="2"
    )[0]
    assert "| Environment | Clusters | Targets | Added | Changed | Removed |" in part
    assert "| dev | 20 | 20 | 0 | 20 | 0 |" in part and "| prod | 20 | 20 | 0 | 20 | 0 |" in part
    assert "<details><summary>All 40 clusters</summary>" in part and "| prod | c039 | 1 | 0 | 1 | 0 |" in part


def test_comment_golden_for_the_example_fleet(tmp_path: Path) -> None:
    """The comment for a realistic pull request on examples/fleet (an add-on bump and a prod overlay)."""
    import shutil

    from bot.render_runtime.engine import compute_diff
    from tests.render.conftest import FLEET

    base, head = tmp_path / "base", tmp_path / "head"
    shutil.copytree(FLEET, base)
    shutil.copytree(FLEET, head)
    addon = head / "common/addons/cert-manager.yaml"
    addon.write_text(addon.read_text().replace("v1.15.3", "v1.16.1"))
    overlay = head / "apps/checkout/overlays/prod/kustomization.yaml"
    overlay.write_text(overlay.read_text().replace("value: 3", "value: 4"))
    config = {"clusters": [], "render": {"parallelism": 2}}
    import yaml

    config["clusters"] = yaml.safe_load((FLEET / ".github/gitops-bot.yml").read_text())["clusters"]
    changed = ["common/addons/cert-manager.yaml", "apps/checkout/overlays/prod/kustomization.yaml"]
    result = compute_diff(base, head, config, changed_paths=changed, secret_key=b"golden")
    parts = diff_comment_parts(result, base_sha="0a1b2c3d", head_sha="4e5f6a7b")
    assert len(parts) == 1
    _golden("comment-fleet.md", parts[0])


def test_parse_marker_finds_our_comments_only() -> None:
    from bot.domain.diff import parse_marker

    parts = diff_comment_parts(
        _result(n_targets=8, big=3000), base_sha="1", head_sha="2", limit=12_000, max_parts=10
    )
    assert [parse_marker(p) for p in parts] == [(i, len(parts)) for i in range(1, len(parts) + 1)]
    assert parse_marker("LGTM <!-- gitops-bot:diff part 1/1 -->") is None
    assert parse_marker("") is None
