"""Rule 3: kro graphs (ids, references, cycles, readyWhen/includeWhen, simple schema) on real examples."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.model import Severity
from bot.domain.validate.kro import expressions, find_cycle, root_identifiers, topological_order
from bot.domain.validate.simpleschema import SimpleSchemaError, leaf_schema
from tests.conftest import FIXTURES
from tests.validate.helpers import run

EXAMPLES = FIXTURES / "validate" / "kro-examples"
CFG = {"version": 1}


def _graph(resources: str, schema_spec: str = "name: string") -> str:
    return (
        "apiVersion: kro.run/v1alpha1\nkind: ResourceGraphDefinition\nmetadata: {name: g}\nspec:\n"
        f"  schema:\n    apiVersion: v1alpha1\n    kind: Thing\n    spec:\n      {schema_spec}\n"
        f"  resources:\n{resources}"
    )


def _cm(rid: str, name: str = "${schema.spec.name}", extra: str = "") -> str:
    return (
        f"    - id: {rid}\n{extra}      template:\n        apiVersion: v1\n        kind: ConfigMap\n"
        f'        metadata: {{name: "{name}"}}\n'
    )


@pytest.mark.parametrize(
    "rel",
    [
        "aws/ack-eks-cluster/eks-cluster.yaml",
        "aws/aws-accounts-factory/01-network-stack.yaml",
        "aws/eks-cluster-mgmt/charts/kro/resource-groups/eks/rg-eks.yaml",
        "kubernetes/webapp/rg.yaml",
    ],
)
def test_upstream_examples_are_valid_graphs(tmp_path: Path, rel: str) -> None:
    text = (EXAMPLES / rel).read_text()
    findings = [f for f in run(tmp_path, {rel: text}, config=CFG) if f.rule.startswith("kro.")]
    assert findings == []


def test_upstream_invalid_example_is_caught(tmp_path: Path) -> None:
    rel = "aws/ack-eks-cluster/eks-reused.yaml"
    findings = run(tmp_path, {rel: (EXAMPLES / rel).read_text()}, config=CFG)
    refs = [f for f in findings if f.rule == "kro.reference"]
    assert len(refs) == 2 and all("unknown identifier 'spc'" in f.message for f in refs)
    assert "cluster1, cluster2" in refs[0].hint
    kinds = [f for f in findings if f.rule == "schema.unknown-kind"]
    assert len(kinds) == 2 and "Did you mean 'Cluster'" in kinds[0].hint


def test_cycle_is_named(tmp_path: Path) -> None:
    text = _graph(_cm("roleA", "${roleB.metadata.name}1") + _cm("roleB", "${roleA.metadata.name}2"))
    [finding] = run(tmp_path, {"g.yaml": text}, config=CFG)
    assert (
        finding.rule == "kro.cycle" and "graph contains a cycle: roleA -> roleB -> roleA" in finding.message
    )


def test_ids_must_be_valid_unique_and_not_reserved(tmp_path: Path) -> None:
    text = _graph(_cm("my-deployment") + _cm("spec") + _cm("web") + _cm("web"))
    messages = [f.message for f in run(tmp_path, {"g.yaml": text}, config=CFG)]
    assert any("'my-deployment' is not lowerCamelCase" in m for m in messages)
    assert any("'spec' is a reserved word" in m for m in messages)
    assert any("duplicate resource id 'web'" in m for m in messages)


def test_ready_when_may_reference_only_itself_and_include_when_is_standalone(tmp_path: Path) -> None:
    ready = "      readyWhen:\n        - ${other.status.ready}\n        - ${web.status.ready}\n"
    include = "      includeWhen:\n        - enabled ${schema.spec.on}\n"
    text = _graph(_cm("web", extra=ready) + _cm("other", extra=include), "on: boolean\n      name: string")
    findings = run(tmp_path, {"g.yaml": text}, config=CFG)
    assert [f.rule for f in findings] == ["kro.readywhen", "kro.expression"]
    assert "references 'other'" in findings[0].message
    assert "standalone" in findings[1].message


def test_schema_field_references_and_simple_schema_errors(tmp_path: Path) -> None:
    text = _graph(_cm("web", "${schema.spec.nmae}"), "name: strin")
    findings = run(tmp_path, {"g.yaml": text}, config=CFG)
    messages = " ".join(f.message for f in findings)
    assert "unknown type 'strin'" in messages
    assert "schema.spec.nmae is not a field of schema.spec" in messages


@pytest.mark.parametrize(
    ("leaf", "error"),
    [
        ("map[int]string", "map key must be string"),
        ("map[string]", "no value type"),
        ("integer | default=abc", "not a valid integer"),
        ("boolean | enum=true,false", "enum is allowed on string or integer only"),
        ("integer | pattern=^a$", "strings only"),
        ("string | colour=red", "unknown marker"),
        ('string | default="open', "malformed marker"),
    ],
)
def test_simple_schema_rejects(leaf: str, error: str) -> None:
    with pytest.raises(SimpleSchemaError, match=error):
        leaf_schema(leaf, {})


def test_simple_schema_accepts_markers_and_custom_types() -> None:
    schema, required = leaf_schema(
        'integer | required=true default=3 minimum=1 maximum=10 description="n"', {}
    )
    assert required and schema == {
        "type": "integer",
        "minimum": 1.0,
        "maximum": 10.0,
        "default": 3,
        "description": "n",
    }
    schema, _ = leaf_schema("[]Port", {"Port": {"number": "integer"}})
    assert schema["items"]["properties"]["number"] == {"type": "integer"}
    with pytest.raises(SimpleSchemaError, match="cycle between custom types"):
        leaf_schema("Person", {"Person": {"c": "Company"}, "Company": {"p": "Person"}})


def test_expression_scanning() -> None:
    assert expressions("a-${x.y}-${'}'}") == (["x.y", "'}'"], "")
    assert expressions("${x")[1] == "`${` without a closing `}`"
    idents = root_identifiers('subnets.map(s, s.status.id).filter(c, c != "vpc.x") + [schema.spec.a]')
    assert [i for i, _ in idents] == ["subnets", "schema"]


def test_topological_order_matches_kro() -> None:
    order = ["A", "B", "C", "D", "E", "F"]
    edges = {"A": {"B", "C"}, "B": {"D"}, "C": {"D"}, "E": {"F", "A"}}  # X: deps
    assert topological_order(order, edges) == ["D", "B", "C", "A", "F", "E"]
    assert find_cycle(["a", "b", "c"], {"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_patterns_that_could_backtrack_are_not_run() -> None:
    schema, _ = leaf_schema("string | pattern=^(a+)+$", {})
    assert "pattern" not in schema
    schema, _ = leaf_schema("string | pattern=^[a-z]+$", {})
    assert schema["pattern"] == "^[a-z]+$"


def test_foreach_iterators_follow_the_id_rules(tmp_path: Path) -> None:
    each = "      forEach:\n        - web: ${schema.spec.zones}\n        - Bad-Name: ${schema.spec.zones}\n"
    text = _graph(
        _cm("web", "${schema.spec.name}-${web}", extra=each), "name: string\n      zones: '[]string'"
    )
    messages = [f.message for f in run(tmp_path, {"g.yaml": text}, config=CFG)]
    assert any("iterator 'Bad-Name' is not a valid" in m for m in messages)
    assert any("iterator 'web' has the same name as a resource id" in m for m in messages)


@given(st.text(max_size=40))
def test_any_leaf_text_is_accepted_or_rejected_cleanly(leaf: str) -> None:
    try:
        schema, required = leaf_schema(leaf, {"Known": {"a": "string"}})
    except SimpleSchemaError as exc:
        assert str(exc)
    else:
        assert isinstance(schema, dict) and isinstance(required, bool)


KRO_LIBS_RGD = """
apiVersion: kro.run/v1alpha1
kind: ResourceGraphDefinition
metadata:
  name: webapp.kro.run
spec:
  schema:
    apiVersion: v1alpha1
    kind: WebApp
    spec:
      name: string | required=true description="The app name, used as a prefix"
      hosts: '[]string | default=["a.example.com", "b.example.com"] minItems=1'
      labels: 'map[string]string | default={"team":"web"}'
      replicas: integer | default=2 minimum=1 maximum=10
      tier: string | enum=frontend,backend default=frontend
      debug: boolean | default=True
      owner: string | validation="self.size() > 2" immutable=true
  resources:
    - id: config
      template:
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: ${schema.spec.name + "-" + hash.fnv64a(schema.spec.name)}
        data:
          digest: ${base64.encode(hash.sha256(schema.spec.name))}
          md5: ${hash.md5(schema.spec.name)}
          hosts: ${json.marshal(schema.spec.hosts)}
          token: ${random.seededString(8, schema.spec.name)}
          first: ${cel.bind(h, schema.spec.hosts, h[0])}
          team: ${schema.spec.labels.?team.orValue("none")}
          merged: '${json.marshal(schema.spec.labels.merge({"app": schema.spec.name}))}'
"""


def test_kro_markers_and_cel_libraries_are_accepted(tmp_path: Path) -> None:
    instance = (
        "apiVersion: kro.run/v1alpha1\nkind: WebApp\nmetadata: {name: w}\nspec: {name: shop, owner: ops}\n"
    )
    findings = run(tmp_path, {"rgd.yaml": KRO_LIBS_RGD, "app.yaml": instance}, config=CFG)
    assert findings == []


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("minItems=1", "minItemz=1", "unknown marker 'minItemz'"),
        ('default=["a.example.com", "b.example.com"]', 'default=["a.example.com"', "unclosed bracket"),
        ('default={"team":"web"}', "default={team:web}", "not a valid object"),
        ("hash.md5(", "hash.md6(schema.spec.nmae) + md5(", "schema.spec.nmae is not a field"),
        ("cel.bind(h,", "cel.bind(hh,", "unknown identifier 'h'"),
    ],
)
def test_kro_markers_and_cel_mistakes_are_still_caught(
    tmp_path: Path, old: str, new: str, error: str
) -> None:
    assert old in KRO_LIBS_RGD
    findings = run(tmp_path, {"rgd.yaml": KRO_LIBS_RGD.replace(old, new)}, config=CFG)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    assert errors and any(error in f.message for f in errors), [f.message for f in errors]


def test_an_instance_breaking_a_list_default_schema_is_caught(tmp_path: Path) -> None:
    instance = (
        "apiVersion: kro.run/v1alpha1\nkind: WebApp\nmetadata: {name: w}\nspec: {name: shop, hosts: []}\n"
    )
    findings = run(tmp_path, {"rgd.yaml": KRO_LIBS_RGD, "app.yaml": instance}, config=CFG)
    assert [(f.rule, f.path) for f in findings] == [("schema", "app.yaml")]
    assert "should be non-empty" in findings[0].message
