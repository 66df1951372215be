"""Rules 6-7 (secret hygiene, Gatekeeper from the base tree), check-run output and self-service."""

from __future__ import annotations

from pathlib import Path

from bot.domain.model import CheckInput, Finding, RenderedObject, Severity
from bot.domain.validate import annotations, self_service_decision, validation_summary
from tests.conftest import FIXTURES
from tests.validate.helpers import FLEET_CONFIG, crossplane_cluster, crossplane_nodegroup, run, write_tree

SECRET_VALUE = "c3VwZXItc2VjcmV0LXBhc3N3b3Jk"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx\n-----END RSA PRIVATE KEY-----\n"
ACCESS_KEY = "AKIA" + "Q3EGRW7Z5XJ2KLMN"
LIBRARY = FIXTURES / "gatekeeper-library" / "general"


def _all_text(findings: list[Finding]) -> str:
    return " ".join(f.message + f.hint for f in findings)


def test_plaintext_secret_is_an_error_without_echoing_the_value(tmp_path: Path) -> None:
    text = f"apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\ndata:\n  password: {SECRET_VALUE}\n"
    [finding] = run(tmp_path, {"apps/secret.yaml": text})
    assert finding.rule == "secrets.plaintext" and finding.line == 4
    assert "ExternalSecret" in finding.hint and "password" in finding.message
    assert SECRET_VALUE not in _all_text([finding])


def test_a_template_secret_with_placeholders_and_public_material_is_a_notice(tmp_path: Path) -> None:
    # the shape of aws-samples/multi-cluster-gitops' secrets template: XXXX placeholders, a public known_hosts
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: flux-system}\ndata:\n"
        "  identity: XXXX\n  identity.pub: XXXX\n  known_hosts: Z2l0aHViLmNvbSBlY2RzYQ==\n"
        "stringData:\n  token: <your token>\n  password: REPLACE_ME\n"
    )
    findings = run(tmp_path, {"setup/git-credentials.yaml": text})
    assert [(f.rule, f.severity, f.line) for f in findings] == [
        ("secrets.placeholder", Severity.NOTICE, 4),
        ("secrets.placeholder", Severity.NOTICE, 8),
    ]


def test_one_real_value_beside_placeholders_is_still_an_error_naming_only_it(tmp_path: Path) -> None:
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: app}\nstringData:\n"
        "  api_key: REPLACE_ME\n  password: password123\n  ca.crt: some-public-cert\n"
    )
    [finding] = run(tmp_path, {"apps/secret.yaml": text})
    assert finding.rule == "secrets.plaintext" and finding.severity is Severity.ERROR
    assert "keys: password)" in finding.message and "password123" not in _all_text([finding])


def test_external_secret_and_empty_secret_pass(tmp_path: Path) -> None:
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: tls}\ntype: kubernetes.io/tls\n"
    assert run(tmp_path, {"apps/secret.yaml": text}) == []


def test_private_keys_and_access_keys_in_any_file(tmp_path: Path) -> None:
    files = {"notes/readme.md": f"key:\n{PEM}", "scripts/env.sh": f"export AWS_ACCESS_KEY_ID={ACCESS_KEY}\n"}
    findings = run(tmp_path, files)
    assert sorted((f.path, f.rule, f.line) for f in findings) == [
        ("notes/readme.md", "secrets.private-key", 2),
        ("scripts/env.sh", "secrets.aws-key", 1),
    ]
    assert ACCESS_KEY not in _all_text(findings) and "MIIEow" not in _all_text(findings)


def test_irsa_role_arn_format_and_account(tmp_path: Path) -> None:
    def sa(arn: str) -> str:
        head = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n  annotations:\n"
        return head + f"    eks.amazonaws.com/role-arn: {arn}\n"

    assert run(tmp_path / "a", {"clusters/dev/sa.yaml": sa("arn:aws:iam::111111111111:role/app")}) == []
    [bad] = run(tmp_path / "b", {"clusters/dev/sa.yaml": sa("arn:aws:iam::1111:role/app")})
    assert bad.rule == "secrets.irsa" and bad.line == 6 and "not an IAM role ARN" in bad.message
    [other] = run(tmp_path / "c", {"clusters/dev/sa.yaml": sa("arn:aws:iam::999999999999:role/app")})
    assert "account 999999999999, not the cluster's account (111111111111)" in other.message


POLICY = {
    "policies/template.yaml": (LIBRARY / "requiredlabels" / "template.yaml").read_text(),
    "policies/constraint.yaml": """
        apiVersion: constraints.gatekeeper.sh/v1beta1
        kind: K8sRequiredLabels
        metadata: {name: ns-need-owner}
        spec:
          enforcementAction: warn
          match: {kinds: [{apiGroups: [""], kinds: [Namespace]}]}
          parameters: {labels: [{key: owner}]}
    """,
}


def test_gatekeeper_runs_base_policy_on_changed_objects_and_rendered_output(tmp_path: Path) -> None:
    ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"
    source = "clusters/dev/namespaces.yaml"
    rendered = RenderedObject(
        "dev",
        "eu-1",
        "dev",
        source,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rendered"}},
    )
    orphan = RenderedObject(
        "dev", "eu-1", "dev", "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "o"}}
    )
    head = {"apps/ns.yaml": ns, source: "# rendered from here\n---\n" + ns.replace("shop", "rendered")}
    findings = run(tmp_path, head, base=POLICY, changed=["apps/ns.yaml"], rendered=(rendered, orphan))
    assert sorted((f.rule, f.path, f.line, f.severity) for f in findings) == [
        ("policy.gatekeeper", "(rendered)", 1, Severity.WARNING),
        ("policy.gatekeeper", "apps/ns.yaml", 1, Severity.WARNING),
        ("policy.gatekeeper", source, 3, Severity.WARNING),
    ]
    assert [a["path"] for a in annotations(findings)] == ["apps/ns.yaml", source]
    assert "you must provide labels" in findings[0].message


def test_gatekeeper_ignores_policy_changed_in_the_pr(tmp_path: Path) -> None:
    ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"
    findings = run(tmp_path, {"apps/ns.yaml": ns, **POLICY}, base={}, changed=["apps/ns.yaml"])
    assert findings == []


def test_summary_and_annotations() -> None:
    findings = [
        Finding("fleet.region", Severity.ERROR, "c.yaml", 3, "region 'x' | bad", "Use eu-west-1.", column=5),
        Finding("eks.version", Severity.WARNING, "c.yaml", 7, "extended support", "Upgrade."),
        Finding("eks.version", Severity.NOTICE, "d.yaml", 1, "unknown", ""),
    ]
    title, summary = validation_summary(findings)
    assert title == "Validation failed: 1 error, 1 warning, 1 notice"
    assert "region 'x' \\| bad" in summary and summary.index(":x:") < summary.index(":warning:")
    assert validation_summary([])[0] == "Validation passed"
    assert validation_summary(findings[1:])[0] == "Validation passed with 1 warning, 1 notice"
    notes = annotations(findings)
    assert notes[0] == {
        "path": "c.yaml",
        "start_line": 3,
        "end_line": 3,
        "annotation_level": "failure",
        "title": "fleet.region",
        "message": "region 'x' | bad\n\nHint: Use eu-west-1.",
        "start_column": 5,
        "end_column": 5,
    }
    assert [n["annotation_level"] for n in notes] == ["failure", "warning", "notice"]
    many = [Finding("r", Severity.ERROR, "x.yaml", i, f"m{i}", "h") for i in range(1, 80)]
    assert "<details><summary>29 more findings</summary>" in validation_summary(many)[1]


def _check(tmp_path: Path, files: dict[str, str], self_service: dict[str, object] | None) -> CheckInput:
    config = {**FLEET_CONFIG, **({"self_service": self_service} if self_service is not None else {})}
    head = write_tree(tmp_path / "head", files)
    return CheckInput(base_dir=tmp_path / "head", head_dir=head, config=config, changed_paths=tuple(files))


def test_self_service_is_off_by_default(tmp_path: Path) -> None:
    decision = self_service_decision(
        _check(tmp_path, {"clusters/dev/a.yaml": crossplane_nodegroup()}, None), []
    )
    assert not decision.eligible and "off" in decision.reasons[0]


def test_self_service_low_risk_dev_request_is_eligible(tmp_path: Path) -> None:
    cfg = {"enabled": True, "environments": ["dev"], "max_nodes": 10}
    check = _check(
        tmp_path, {"clusters/dev/a.yaml": crossplane_cluster() + "---\n" + crossplane_nodegroup()}, cfg
    )
    decision = self_service_decision(check, [])
    assert decision.eligible, decision.reasons


def test_self_service_refuses_with_reasons(tmp_path: Path) -> None:
    cfg = {"enabled": True, "environments": ["dev"], "max_nodes": 4}
    files = {
        "clusters/prod/a.yaml": crossplane_cluster(env="prod"),
        "clusters/dev/b.yaml": crossplane_nodegroup(),
        "README.md": "hello\n",
    }
    warning = Finding("eks.version", Severity.WARNING, "x", 1, "m", "h")
    decision = self_service_decision(_check(tmp_path, files, cfg), [warning])
    assert not decision.eligible
    text = "\n".join(decision.reasons)
    assert "1 error/warning finding(s)" in text
    assert "README.md is not a cluster request" in text
    assert "environment prod is not self-service" in text
    assert "maxSize 5 is above the self-service limit of 4" in text
