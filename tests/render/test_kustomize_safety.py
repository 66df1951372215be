"""Rendering never reaches the network, never leaves the repository and never runs plugins or Helm."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.domain.model import Severity
from bot.domain.render import discover
from bot.domain.render.kustomize import KustomizationScanner, KustomizeError, is_remote
from bot.render_runtime.engine import forget_memos, render_target
from bot.render_runtime.kustomize_runner import run_kustomize
from tests.render.conftest import KEY, write

KUST = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n"


def _render(tree: Path, name: str) -> tuple[list[dict], list]:
    disc = discover(tree, {}, secret_key=KEY)
    target = next(t for t in disc.targets if t.name == name)
    assert disc.scanner is not None
    return render_target(tree, target, disc.scanner, secret_key=KEY)


@pytest.mark.parametrize(
    "ref",
    [
        "https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1",
        "github.com/org/repo/base?ref=main",
        "git@github.com:org/repo.git//base",
        "ssh://git@example.com/org/repo.git",
        "http://example.com/manifest.yaml",
    ],
)
def test_remote_resource_is_refused_before_kustomize_runs(tmp_path: Path, ref: str) -> None:
    write(
        tmp_path,
        {"app/kustomization.yaml": KUST + f"resources:\n  - cm.yaml\n  - {ref}\n", "app/cm.yaml": CM},
    )
    objects, findings = _render(tmp_path, "kustomize/app")
    assert objects == []
    (f,) = [f for f in findings if f.rule == "render.remote"]
    assert f.severity is Severity.ERROR and f.path == "app/kustomization.yaml" and f.line == 5
    assert ref in f.message and "Vendor" in f.hint


def test_remote_base_in_a_nested_base_is_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "overlay/kustomization.yaml": KUST + "resources:\n  - ../base\n",
            "base/kustomization.yaml": KUST + "components:\n  - github.com/org/comp?ref=v1\n",
        },
    )
    _, findings = _render(tmp_path, "kustomize/overlay")
    assert [(f.rule, f.path) for f in findings] == [("render.remote", "base/kustomization.yaml")]


def test_path_leaving_the_repository_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(tmp_path, {"outside/kustomization.yaml": KUST + "resources:\n  - cm.yaml\n", "outside/cm.yaml": CM})
    write(repo, {"app/kustomization.yaml": KUST + "resources:\n  - ../../outside\n"})
    objects, findings = _render(repo, "kustomize/app")
    assert objects == []
    assert [f.rule for f in findings] == ["render.path"]
    assert "leaves the repository" in findings[0].message


def test_patch_file_leaving_the_repository_is_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/kustomization.yaml": KUST + "resources: [cm.yaml]\npatches:\n  - path: ../../etc/passwd\n",
            "app/cm.yaml": CM,
        },
    )
    _, findings = _render(tmp_path, "kustomize/app")
    assert any(f.rule == "render.path" for f in findings)


def test_symlinked_directory_out_of_the_tree_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(tmp_path, {"secret/kustomization.yaml": KUST + "resources: [cm.yaml]\n", "secret/cm.yaml": CM})
    write(repo, {"app/kustomization.yaml": KUST + "resources:\n  - link\n"})
    (repo / "app/link").symlink_to(tmp_path / "secret")
    objects, findings = _render(repo, "kustomize/app")
    assert objects == [] and [f.rule for f in findings] == ["render.path"]


def test_helm_charts_are_a_finding_not_a_render(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/kustomization.yaml": KUST
            + "helmCharts:\n  - name: redis\n    repo: https://charts.bitnami.com/bitnami\n"
        },
    )
    objects, findings = _render(tmp_path, "kustomize/app")
    assert objects == []
    assert [f.rule for f in findings] == ["render.helm"] and findings[0].line == 3


def test_exec_plugins_are_not_enabled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    write(
        tmp_path,
        {
            "app/kustomization.yaml": KUST + "generators:\n  - gen.yaml\n",
            "app/gen.yaml": (
                "apiVersion: someteam.example.com/v1\nkind: ChartInflator\nmetadata:\n  name: x\n"
                "  annotations:\n    config.kubernetes.io/function: |\n      exec:\n"
                f"        path: /bin/sh\n        args: ['-c', 'touch {marker}']\n"
            ),
        },
    )
    _, findings = _render(tmp_path, "kustomize/app")
    assert not marker.exists()
    assert any(f.rule == "render.kustomize" and f.blocking for f in findings)


def test_kustomize_gets_no_proxy_and_an_empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    real_run = subprocess.run

    def spy(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        seen["argv"] = argv
        seen["env"] = kwargs["env"]
        return real_run(argv, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setattr(subprocess, "run", spy)
    write(tmp_path, {"app/kustomization.yaml": KUST + "resources: [cm.yaml]\n", "app/cm.yaml": CM})
    assert "ConfigMap" in run_kustomize(tmp_path, "app")
    argv, env = seen["argv"], seen["env"]
    assert isinstance(argv, list) and isinstance(env, dict)
    assert "--load-restrictor=LoadRestrictionsRootOnly" in argv
    assert any(a.startswith("--as=") for a in argv) or shutil.which("prlimit") is None
    assert not any("alpha" in a or "exec" in a or "helm" in a for a in argv)
    assert not any("proxy" in k.lower() and k.lower() != "no_proxy" for k in env)
    assert "gitops-bot-home-" in env["HOME"] and env["HOME"] != str(Path.home())


def test_is_remote() -> None:
    assert is_remote("https://x/y") and is_remote("git::https://example.com/repo")
    assert not is_remote("../base") and not is_remote("patches/replicas.yaml")


def test_scanner_records_every_input_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "base/kustomization.yaml": KUST
            + "resources: [cm.yaml]\nconfigMapGenerator:\n  - name: g\n    files: [conf/app.properties]\n",
            "base/cm.yaml": CM,
            "base/conf/app.properties": "a=b\n",
            "overlay/kustomization.yaml": KUST + "resources: [../base]\npatches:\n  - path: p.yaml\n",
            "overlay/p.yaml": CM,
        },
    )
    closure = KustomizationScanner(tmp_path).closure("overlay")
    assert closure.files == {
        "overlay/kustomization.yaml",
        "overlay/p.yaml",
        "base/kustomization.yaml",
        "base/cm.yaml",
        "base/conf/app.properties",
    }
    assert closure.findings == []


def test_target_is_discovered_only_once_for_a_referenced_base(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "base/kustomization.yaml": KUST + "resources: [cm.yaml]\n",
            "base/cm.yaml": CM,
            "overlay/kustomization.yaml": KUST + "resources: [../base]\nnamePrefix: o-\n",
        }
    )
    assert [t.name for t in discover(repo, {}, secret_key=KEY).targets] == ["kustomize/overlay"]


def test_kustomize_errors_carry_no_log_header() -> None:
    from bot.domain.render.kustomize import clean_error

    line = (
        'E1121 08:33:31.394852   15861 run.go:72] "command failed" '
        'err="accumulating resources: accumulation err=\\"missing.yaml\\": no such file"'
    )
    assert clean_error(line) == 'accumulating resources: accumulation err="missing.yaml": no such file'
    assert clean_error("Error: no matches for Id Deployment") == "Error: no matches for Id Deployment"
    assert clean_error('E1121 08:33:31.394852 1 run.go:72] other "text"') == 'other "text"'


def test_a_multi_line_kustomize_error_is_reported_whole_without_log_headers() -> None:
    from bot.domain.render.kustomize import clean_stderr

    stderr = (
        'E1203 17:43:53.309516   30590 run.go:72] "command failed" err=<\n'
        "\ttrouble configuring builtin PatchTransformer with config: `\n"
        "\tpath: p.yaml\n"
        '\t`: unable to parse SM or JSON patch from [path: "p.yaml"]\n'
        " >\n"
    )
    assert clean_stderr(stderr) == (
        "trouble configuring builtin PatchTransformer with config: `\npath: p.yaml\n"
        '`: unable to parse SM or JSON patch from [path: "p.yaml"]'
    )
    one = 'E1121 08:33:31.394852   15861 run.go:72] "command failed" err="a: b"\n'
    assert clean_stderr(one) == "a: b"
    assert clean_stderr("Error: no matches\nsecond line\n") == "Error: no matches\nsecond line"
    deprecated = "# Warning: 'patchesStrategicMerge' is deprecated.\nError: accumulating resources: no base\n"
    assert (
        clean_stderr(deprecated)
        == "Error: accumulating resources: no base\n# Warning: 'patchesStrategicMerge' is deprecated."
    )


def test_a_broken_patch_file_error_from_real_kustomize_is_whole(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/kustomization.yaml": KUST + "resources: [cm.yaml]\npatches:\n  - path: p.yaml\n",
            "app/cm.yaml": CM,
            "app/p.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  b: [\n",
        },
    )
    with pytest.raises(KustomizeError) as err:
        run_kustomize(tmp_path, "app")
    message = str(err.value)
    assert "p.yaml" in message and len(message) > 20, message
    assert message.strip() != ">" and not message.startswith(("E1", "I1", "W1"))
    assert "run.go" not in message


def test_the_same_kustomize_error_reads_the_same_twice(tmp_path: Path) -> None:
    write(tmp_path, {"app/kustomization.yaml": KUST + "resources:\n  - missing.yaml\n"})
    messages = []
    for _ in range(2):
        forget_memos()  # kustomize runs again: nothing comes from a cache
        _, findings = _render(tmp_path, "kustomize/app")
        (f,) = [f for f in findings if f.rule == "render.kustomize"]
        messages.append(f.message)
    assert messages[0] == messages[1]
    assert "missing.yaml" in messages[0] and "run.go" not in messages[0]
