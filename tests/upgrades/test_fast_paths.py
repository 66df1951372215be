"""The fast paths of ``upgrade plan``: they give exactly what the full paths give.

* One cluster's plan, read without the other clusters' folders (:func:`load_cluster` with
  ``fast``), against the plan read from the whole tree, on a fleet in the benchmark's shape
  (where the fast path applies), on the example fleet and on fleets where it must step aside.
* The configuration read by libyaml (:func:`fastyaml.load_plain_12`) against yamlio's reading.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.config import parse_config
from bot.domain.render import fastyaml
from bot.domain.upgrades.plan import UpgradeSettings, plan_upgrade
from bot.domain.validate.eks import EksCatalog
from bot.domain.yamlio import YamlError, load_yaml_text
from bot.git.files import read_file_at
from bot.upgrades.facts import _load_fast, fast_folders, load_cluster

KEY = b"k" * 32
TODAY = date(2026, 12, 3)
ENVS = ("dev", "staging", "prod")
FLUX = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"


def request(name: str, version: str) -> str:
    return (
        f"apiVersion: eks.aws.crossplane.io/v1beta1\nkind: Cluster\nmetadata:\n  name: {name}\n"
        f'spec:\n  forProvider:\n    region: eu-west-1\n    version: "{version}"\n---\n'
        f"apiVersion: eks.aws.crossplane.io/v1alpha1\nkind: NodeGroup\nmetadata:\n  name: {name}-workers\n"
        f'spec:\n  forProvider:\n    clusterName: {name}\n    version: "{version}"\n---\n'
        f"apiVersion: eks.aws.crossplane.io/v1alpha1\nkind: Addon\nmetadata:\n  name: {name}-kube-proxy\n"
        f"spec:\n  forProvider:\n    addonName: kube-proxy\n    addonVersion: v{version}.0-eksbuild.1\n"
        f"    clusterName: {name}\n"
    )


def fleet_files(clusters: int = 6) -> tuple[dict[str, str], list[str]]:
    """A fleet in bench/upgrade_bench.py's shape: shared apps with per-env overlays (prod's with an
    API that 1.25 removed), and per cluster a folder with its request, ``cluster-info`` and Flux
    Kustomizations (variables from ``cluster-info``)."""
    files: dict[str, str] = {}
    for app in ("web", "jobs"):
        files[f"apps/{app}/base/kustomization.yaml"] = "resources: [deploy.yaml]\n"
        files[f"apps/{app}/base/deploy.yaml"] = (
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\nspec:\n  template:\n"
            "    spec:\n      containers:\n        - name: app\n          image: app:1\n"
            "          env:\n            - name: CLUSTER\n              value: ${cluster_name}\n"
        )
        for env in ENVS:
            extra = ", pdb.yaml" if env == "prod" and app == "web" else ""
            files[f"apps/{app}/overlays/{env}/kustomization.yaml"] = f"resources: [../../base{extra}]\n"
    files["apps/web/overlays/prod/pdb.yaml"] = (
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n"
        "spec:\n  minAvailable: 1\n"
    )
    registry = ["version: 1", "upgrades: {}", "clusters:"]
    names = []
    for i in range(clusters):
        env = ENVS[i % len(ENVS)]
        name = f"{env}-euw1-{i:02d}"
        folder = f"clusters/{env}/{name}"
        names.append(name)
        registry += [f"  - name: {name}", f"    env: {env}", f"    path: {folder}"]
        files[f"{folder}/cluster.yaml"] = request(name, ("1.31", "1.33")[i % 2])
        files[f"{folder}/cluster-info.yaml"] = (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cluster-info\n  namespace: flux-system\n"
            f"data:\n  cluster_name: {name}\n"
        )
        files[f"{folder}/flux.yaml"] = "---\n".join(
            f"{FLUX}metadata:\n  name: {app}\n  namespace: flux-system\nspec:\n"
            f"  path: ./apps/{app}/overlays/{env}\n  sourceRef:\n    kind: GitRepository\n"
            "    name: flux-system\n  postBuild:\n    substituteFrom:\n      - kind: ConfigMap\n"
            "        name: cluster-info\n"
            for app in ("web", "jobs")
        )
    files[".github/gitops-bot.yml"] = "\n".join(registry) + "\n"
    return files, names


def plan_json(repo: Path, cluster: str, *, fast: bool) -> list[dict[str, Any]]:
    """The cluster's in-place and blue/green plans, as ``upgrade plan --format json`` prints them."""
    facts, fleet = load_cluster(repo, "HEAD", cluster, secret_key=KEY, fast=fast)
    plans = [
        plan_upgrade(
            facts,
            EksCatalog.bundled(),
            TODAY,
            strategy=strategy,
            settings=UpgradeSettings.from_config(fleet.config),
        )
        for strategy in ("in-place", "blue-green")
    ]
    return [json.loads(json.dumps(plan.to_json())) for plan in plans]


def taken(repo: Path, cluster: str) -> bool:
    """Whether the fast path answers for ``cluster`` (rather than stepping aside)."""
    git_dir = repo / ".git"
    config = parse_config(read_file_at(git_dir, "HEAD", ".github/gitops-bot.yml"))
    return _load_fast(git_dir, "HEAD", config, cluster, KEY) is not None


@pytest.mark.slow
def test_fast_plan_is_the_full_plan_on_a_fleet(make_repo: Callable[..., Path]) -> None:
    files, names = fleet_files()
    repo = make_repo(files)
    for cluster in names:
        assert taken(repo, cluster), cluster
        assert plan_json(repo, cluster, fast=True) == plan_json(repo, cluster, fast=False)
    # The plans are not empty: prod renders the removed PodDisruptionBudget, from its own file.
    prod = plan_json(repo, names[2], fast=True)[0]
    assert [(r["kind"], r["path"], r["line"]) for r in prod["removed_apis"]] == [
        ("PodDisruptionBudget", "apps/web/overlays/prod/pdb.yaml", 1)
    ]
    assert [a["name"] for a in prod["addons"]] == ["kube-proxy"]


@pytest.mark.slow
def test_fast_plan_on_the_example_fleet(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(fleet=True)
    assert plan_json(repo, "prod-use1", fast=True) == plan_json(repo, "prod-use1", fast=False)


@pytest.mark.parametrize(
    ("path", "text", "why"),
    [
        # Another cluster's folder holds a node group of this cluster: it must be in the plan.
        (
            "clusters/prod/prod-euw1-02/extra.yaml",
            "apiVersion: eks.aws.crossplane.io/v1alpha1\nkind: NodeGroup\nmetadata:\n  name: more\n"
            'spec:\n  forProvider:\n    clusterName: dev-euw1-00\n    version: "1.30"\n',
            "names the cluster",
        ),
        # A Flux source in another folder is found by name from this cluster's Kustomizations.
        (
            "clusters/prod/prod-euw1-02/source.yaml",
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n"
            "  name: flux-system\n  namespace: flux-system\nspec:\n  url: https://example.com/other.git\n",
            "a Flux source",
        ),
        # A shared kustomization reads a file from another cluster's folder.
        (
            "apps/web/overlays/dev/kustomization.yaml",
            "resources: [../../base, ../../../../clusters/staging/staging-euw1-01/cluster-info.yaml]\n",
            "a reference into a left-out folder",
        ),
    ],
)
def test_fast_path_steps_aside(make_repo: Callable[..., Path], path: str, text: str, why: str) -> None:
    files, _ = fleet_files()
    repo = make_repo({**files, path: text})
    git_dir = repo / ".git"
    config = parse_config(files[".github/gitops-bot.yml"])
    assert fast_folders(git_dir, "HEAD", config, "dev-euw1-00") is None, why
    assert plan_json(repo, "dev-euw1-00", fast=True) == plan_json(repo, "dev-euw1-00", fast=False)


def test_fast_path_steps_aside_for_a_borrowed_node_group(make_repo: Callable[..., Path]) -> None:
    """A node group naming no known cluster goes to the only cluster read: with the left-out
    clusters there, it goes to none, so the fast path must not answer."""
    files, _ = fleet_files()
    orphan = (
        "apiVersion: eks.aws.crossplane.io/v1alpha1\nkind: NodeGroup\nmetadata:\n  name: orphan\n"
        'spec:\n  forProvider:\n    version: "1.30"\n'
    )
    repo = make_repo({**files, "shared/nodegroups.yaml": orphan})
    assert not taken(repo, "dev-euw1-00")
    full = plan_json(repo, "dev-euw1-00", fast=False)
    assert "orphan" not in json.dumps(full)
    assert full[0]["nodegroups"]
    assert plan_json(repo, "dev-euw1-00", fast=True) == full


# ----------------------------------------------------------------- configuration read by libyaml

CONFIGS = [
    "version: 1\nclusters:\n  - name: a\n    env: prod\n    path: clusters/a\n",
    "upgrades:\n  lead_time: 90\n  soak: 1h\n  auto_open: true\n  ratio: 0.5\n",
    "a: yes\n",  # YAML 1.1 bool, 1.2 string
    "a: 010\n",  # 1.1 octal
    "a: 1e3\n",
    "a: 2026-01-01\n",
    "a: 1_000\n",
    "a: !!str 12\n",
    "a: &x 1\nb: *x\n",
    "a: 1\na: 2\n",
    "%YAML 1.1\n---\na: yes\n",
    "a: {b: [1, 'two', \"three\", null, ~, -4, 5.25]}\n",
    "a: |\n  line\n  next\nb: >\n  folded\n  text\n",
    "? [a]\n: 1\n",
    "a: [unclosed\n",
    "---\n---\na: 1\n",
    "",
    "a: .inf\nb: -.5\nc: +1\n",
    "'quoted key': ok\n\"x\": 'y'\n",
]


def yamlio_reading(text: str) -> tuple[str, Any]:
    try:
        return "ok", load_yaml_text(text, "c.yml")
    except YamlError:
        return "error", None


@pytest.mark.parametrize("text", CONFIGS)
def test_config_fast_reading_is_yamlio_reading(text: str) -> None:
    fast, data = fastyaml.load_plain_12(text)
    if fast:
        assert yamlio_reading(text) == ("ok", data)
        assert repr(yamlio_reading(text)[1]) == repr(data)  # 1 and 1.0 and True differ here


def test_config_fast_reading_answers_the_usual_config() -> None:
    assert fastyaml.load_plain_12(CONFIGS[0]) == (
        True,
        {"version": 1, "clusters": [{"name": "a", "env": "prod", "path": "clusters/a"}]},
    )
    assert not fastyaml.load_plain_12("a: yes\n")[0]


SCALARS = st.one_of(
    st.sampled_from(
        [
            "yes",
            "no",
            "on",
            "off",
            "y",
            "010",
            "0x1f",
            "1e3",
            "1_0",
            "12:30",
            "2026-01-01",
            ".5",
            "-0",
            "+1",
            "true",
            "True",
            "null",
            "~",
            "=",
            "<<",
            "1.0",
            "0.10",
            "-7",
        ]
    ),
    st.text(alphabet="abc019.-_:+ eE'\"#", min_size=0, max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet="abk_", min_size=1, max_size=3), SCALARS), max_size=5))
def test_config_fast_reading_property(pairs: list[tuple[str, str]]) -> None:
    text = "".join(f"{k}: {v}\n" for k, v in pairs)
    fast, data = fastyaml.load_plain_12(text)
    if fast:
        assert yamlio_reading(text) == ("ok", data)
        assert repr(yamlio_reading(text)[1]) == repr(data)
