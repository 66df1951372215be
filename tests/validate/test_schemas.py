"""Rules 1-2: YAML problems and schemas (bundled CRDs, repository CRDs, kro instances, unknown APIs)."""

from __future__ import annotations

from pathlib import Path

from bot.domain.model import Severity
from tests.validate.helpers import crossplane_cluster, crossplane_nodegroup, rules, run

CFG = {"version": 1}

RGD = """
apiVersion: kro.run/v1alpha1
kind: ResourceGraphDefinition
metadata:
  name: eksclusters.platform
spec:
  schema:
    apiVersion: v1alpha2
    kind: EksCluster
    spec:
      name: string | required=true
      size: string | enum="small,medium,large" default=small
      nodes: integer | default=3 minimum=1 maximum=10
      spot: boolean | default=false
  resources:
    - id: cm
      template:
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: "${schema.spec.name}"}
"""


def test_yaml_syntax_error_and_duplicate_key_have_line_and_column(tmp_path: Path) -> None:
    findings = run(tmp_path, {"a.yaml": "a: 1\nb: [1, 2\n", "b.yaml": "x: 1\ny: 2\nx: 3\n"}, config=CFG)
    by_path = {f.path: f for f in findings}
    assert by_path["a.yaml"].rule == "yaml.syntax" and by_path["a.yaml"].column is not None
    assert by_path["b.yaml"].rule == "yaml.duplicate-key" and by_path["b.yaml"].line == 3
    assert "x" in by_path["b.yaml"].message


def test_an_envsubst_template_that_is_yaml_only_once_filled_in_is_a_notice(tmp_path: Path) -> None:
    # kro's examples/aws/*/instance-template.yaml: `subnetIDs: [${SUBNET_IDS}]`, filled in by envsubst
    template = 'kind: Stack\nspec:\n  vpcID: "${VPC_ID}"\n  subnetIDs: [${SUBNET_IDS}]\n'
    [finding] = run(tmp_path, {"instance-template.yaml": template}, config=CFG)
    assert finding.rule == "yaml.syntax" and finding.severity is Severity.NOTICE and finding.line == 4
    assert "envsubst" in finding.message
    [broken] = run(tmp_path / "plain", {"a.yaml": "spec:\n  ids: [${lower}]\n"}, config=CFG)
    assert broken.severity is Severity.ERROR


def test_valid_crossplane_objects_pass(tmp_path: Path) -> None:
    assert run(tmp_path, {"c.yaml": crossplane_cluster(), "n.yaml": crossplane_nodegroup()}, config=CFG) == []


def test_unknown_field_and_wrong_type_against_bundled_crd(tmp_path: Path) -> None:
    text = crossplane_nodegroup(sizes="1, many, 2").replace("instanceTypes:", "instanceTypez:")
    findings = run(tmp_path, {"n.yaml": text}, config=CFG)
    messages = {f.message for f in findings}
    assert all(f.rule == "schema" and f.severity is Severity.ERROR for f in findings)
    assert any("instanceTypez" in m and "spec.forProvider" in m for m in messages)
    assert any("spec.forProvider.scalingConfig.maxSize" in m and "integer" in m for m in messages)
    lines = {f.line for f in findings}
    assert {9, 12} <= lines


def test_version_not_served_lists_served_versions(tmp_path: Path) -> None:
    text = crossplane_cluster().replace("eks.aws.crossplane.io/v1beta1", "eks.aws.crossplane.io/v1")
    [finding] = run(tmp_path, {"c.yaml": text}, config=CFG)
    assert finding.rule == "schema.version" and "eks.aws.crossplane.io/v1beta1" in finding.hint


def test_unknown_kind_in_known_group_suggests_the_right_kind(tmp_path: Path) -> None:
    text = "apiVersion: eks.services.k8s.aws/v1alpha1\nkind: EKSCluster\nmetadata: {name: x}\nspec: {}\n"
    [finding] = run(tmp_path, {"c.yaml": text}, config=CFG)
    assert finding.rule == "schema.unknown-kind" and finding.line == 2
    assert "Did you mean 'Cluster'" in finding.hint


def test_unknown_group_is_a_notice_and_kro_run_resourcegroup_an_error(tmp_path: Path) -> None:
    text = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n"
    [finding] = run(tmp_path, {"w.yaml": text}, config=CFG)
    assert finding.severity is Severity.NOTICE
    assert "commit the CustomResourceDefinition of Widget (example.com)" in finding.hint
    legacy = (
        "apiVersion: kro.run/v1alpha1\nkind: ResourceGroup\nmetadata: {name: x}\n"
        "spec: {schema: {apiVersion: v1alpha1, kind: X}, resources: []}\n"
    )
    findings = run(tmp_path / "2", {"g.yaml": legacy}, config=CFG)
    assert ("schema.unknown-kind", 1) in rules(findings)
    assert "ResourceGraphDefinition" in findings[0].hint


def test_repository_crd_is_used(tmp_path: Path) -> None:
    crd = """
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata: {name: widgets.example.com}
    spec:
      group: example.com
      names: {kind: Widget, plural: widgets}
      scope: Namespaced
      versions:
        - name: v1
          served: true
          storage: true
          schema:
            openAPIV3Schema:
              type: object
              properties:
                spec:
                  type: object
                  required: [size]
                  properties:
                    size: {x-kubernetes-int-or-string: true}
                    note: {type: string, nullable: true}
                    extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
    """
    ok = (
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a}\n"
        + "spec: {size: 3, note: null, extra: {any: 1}}\n"
    )
    ok2 = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: b}\nspec: {size: 50%}\n"
    bad = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: c}\nspec: {note: 1}\n"
    findings = run(
        tmp_path,
        {"crds/w.yaml": crd, "a.yaml": ok, "b.yaml": ok2, "c.yaml": bad},
        config=CFG,
        changed=["a.yaml", "b.yaml", "c.yaml"],
    )
    assert {(f.path, f.rule) for f in findings} == {("c.yaml", "schema")}
    assert any("'size' is a required property" in f.message for f in findings)


def test_kro_instance_against_rgd_simple_schema(tmp_path: Path) -> None:
    head = "apiVersion: kro.run/v1alpha2\nkind: EksCluster\n"
    good = head + "metadata: {name: a}\nspec: {name: a, size: large, nodes: 4}\n"
    bad = head + "metadata: {name: b}\nspec:\n  size: huge\n  nodes: 11\n  spot: 'yes'\n  colour: red\n"
    old = "apiVersion: kro.run/v1alpha1\nkind: EksCluster\nmetadata: {name: c}\nspec: {name: c}\n"
    findings = run(
        tmp_path,
        {"rgd.yaml": RGD, "good.yaml": good, "bad.yaml": bad, "old.yaml": old},
        config=CFG,
        changed=["good.yaml", "bad.yaml", "old.yaml"],
    )
    bad_findings = [f for f in findings if f.path == "bad.yaml"]
    text = " ".join(f.message for f in bad_findings)
    assert "'name' is a required property" in text
    assert "'huge' is not one of" in text and "11 is greater than the maximum of 10" in text
    assert "'yes' is not of type 'boolean'" in text and "colour" in text
    assert {f.line for f in bad_findings} >= {5, 6, 7, 8}
    [old_finding] = [f for f in findings if f.path == "old.yaml"]
    assert old_finding.rule == "schema.version" and "kro.run/v1alpha2" in old_finding.hint
    assert not [f for f in findings if f.path == "good.yaml"]


def test_unknown_kro_kind_is_a_notice_naming_the_missing_rgd(tmp_path: Path) -> None:
    text = "apiVersion: kro.run/v1alpha1\nkind: Vpc\nmetadata: {name: v}\nspec: {}\n"
    [finding] = run(tmp_path, {"v.yaml": text}, config=CFG)
    assert finding.severity is Severity.NOTICE and "ResourceGraphDefinition" in finding.message


def test_changed_config_is_checked_against_its_schema(tmp_path: Path) -> None:
    findings = run(
        tmp_path, {".github/gitops-bot.yml": "version: 1\nfleet: {allowed_regions: eu-west-1}\n"}, config=CFG
    )
    assert [f.rule for f in findings] == ["config"] and "takes effect after merge" in findings[0].hint
    assert run(tmp_path / "ok", {".github/gitops-bot.yml": "version: 1\n"}, config=CFG) == []
