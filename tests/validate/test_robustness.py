"""Bad input gets findings, never a crash: odd shapes in every place the rules look."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import crds
from tests.validate.helpers import FLEET_CONFIG, run

HEADS = [
    ("eks.aws.crossplane.io/v1beta1", "Cluster"),
    ("eks.aws.crossplane.io/v1alpha1", "NodeGroup"),
    ("eks.services.k8s.aws/v1alpha1", "Nodegroup"),
    ("kro.run/v1alpha1", "ResourceGraphDefinition"),
    ("kro.io/v1alpha1", "ResourceGroup"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
]
ODD = ["'x'", "[1, a]", "5", "null", "{a: {b: [c]}}", "[{id: 1}, x, {template: 3}]"]


@pytest.mark.parametrize(("head", "odd"), list(itertools.product(HEADS, ODD)))
def test_odd_shapes_do_not_crash(tmp_path: Path, head: tuple[str, str], odd: str) -> None:
    api, kind = head
    text = (
        f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: x\n  annotations: {odd}\n"
        f"spec:\n  schema: {odd}\n  resources: {odd}\n  forProvider: {odd}\n  scalingConfig: {odd}\n"
        f"data: {odd}\n---\napiVersion: {api}\nkind: {kind}\nmetadata: {odd}\nspec: {odd}\n"
    )
    findings = run(tmp_path, {"clusters/dev/x.yaml": text})
    assert all(f.path == "clusters/dev/x.yaml" and f.message and f.line >= 1 for f in findings)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=12,
    ),
    head=st.sampled_from(HEADS),
)
def test_arbitrary_specs_do_not_crash(
    tmp_path_factory: pytest.TempPathFactory, value: object, head: tuple[str, str]
) -> None:
    import json

    api, kind = head
    text = json.dumps(
        {"apiVersion": api, "kind": kind, "metadata": {"name": "x"}, "spec": value, "data": value}
    )
    findings = run(tmp_path_factory.mktemp("h"), {"clusters/dev/x.yaml": text}, config=FLEET_CONFIG)
    assert all(f.message for f in findings)


def test_every_bundled_crd_is_indexed_and_licensed() -> None:
    files = set(crds.bundled_crd_files())
    assert files == set(crds.bundled_index().values())
    from importlib import resources

    names = {p.name for p in resources.files("bot.crds").iterdir()}
    for project in (
        "ack-eks-controller",
        "argo-cd",
        "crossplane-provider-aws",
        "external-secrets",
        "flagger",
        "gatekeeper",
        "kro",
        "sealed-secrets",
    ):
        assert f"LICENSE.{project}" in names
    assert {"NOTICE.kro", "NOTICE.gatekeeper", "NOTICE.ack-eks-controller", "README.md"} <= names


def test_file_reads_stay_inside_the_tree_even_after_a_folder_changes(tmp_path: Path) -> None:
    from bot.domain.validate.base import TreeReader, read_text

    root, outside = tmp_path / "repo", tmp_path / "outside"
    (root / "clusters").mkdir(parents=True)
    outside.mkdir()
    (root / "clusters" / "a.yaml").write_text("kind: A\n")
    (outside / "a.yaml").write_text("secret: outside\n")
    (root / "link.yaml").symlink_to(outside / "a.yaml")
    reader = TreeReader(root)
    assert reader.read("clusters/a.yaml") == "kind: A\n"
    assert reader.read("link.yaml") is None  # a file link pointing out of the tree
    assert reader.read("../outside/a.yaml") is None
    assert reader.read("clusters") is None  # not a regular file
    # The folder becomes a link out of the tree: a later read must see it (no process-wide memo).
    (root / "clusters" / "a.yaml").unlink()
    (root / "clusters").rmdir()
    (root / "clusters").symlink_to(outside, target_is_directory=True)
    assert read_text(root, "clusters/a.yaml") is None
    assert TreeReader(root).read("clusters/a.yaml") is None
