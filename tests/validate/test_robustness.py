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
