"""One masking rule: a planted secret never appears in the comment, the check runs, the JSON or the logs."""

from __future__ import annotations

import base64
import json
import logging
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.domain import yamldump
from bot.domain.diff import TargetMeta, diff_objects, mask_secrets
from bot.domain.masking import Masker, mask_object, mask_patterns
from bot.domain.model import Finding, Severity
from bot.domain.render.result import DiffResult
from bot.domain.validate.base import parse_docs
from bot.domain.validate.secrets import TEMPLATE_EXPRESSION, check_doc
from bot.prchecks.build import CheckResult, build_check, learn_secrets, mask_result
from bot.prchecks.publish import result_check_runs
from bot.service import logmask
from tests.render.conftest import commit, git

MakeRepo = Callable[..., Path]
KEY = b"k" * 32
AWS_KEY = "AKIAZ7Q2N4X5LMPQRS3T"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq9ZL1xvZ3pQwerty\nQWERTYUIOPASDFGHJKLZXCVBNM012345\n"
    "-----END RSA PRIVATE KEY-----\n"
)


def secret(name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "web"}, **fields}


def shapes(value: str) -> list[dict[str, Any]]:
    """The value planted every way a Secret can carry it (each a top-level YAML document)."""
    b64 = base64.b64encode(value.encode()).decode()
    return [
        secret("plain", stringData={"password": value}),
        secret("encoded", data={"password": b64}),
        secret("scalar", stringData=value),
        secret("listed", data=[value]),
        {"apiVersion": "v1", "kind": "List", "items": [secret("in-list", stringData={"token": value})]},
        {
            "apiVersion": "kubernetes.crossplane.io/v1alpha2",
            "kind": "Object",
            "metadata": {"name": "wrapped"},
            "spec": {"forProvider": {"manifest": secret("deep", stringData={"k": value})}},
        },
        {"kind": "Secret", "metadata": {"name": "no-api-version"}, "stringData": {"k": value}},
    ]


def result_for(documents: list[dict[str, Any]], echo: str) -> CheckResult:
    """Build the CheckResult the bot builds, from documents as the renderer and validator see them."""
    text = "---\n".join(yamldump.dump(d, sort_keys=False) for d in documents)
    docs, problems = parse_docs(text, "apps/web/secrets.yaml")
    assert not problems
    findings = [f for d in docs for f in check_doc(None, d)]  # type: ignore[arg-type]
    # a rule that echoes what it read (schema errors do) must not leak it either
    findings.append(
        Finding("schema", Severity.ERROR, "apps/web/secrets.yaml", 3, f"{echo!r} is not an object")
    )
    masker = Masker(KEY)
    masker.learn_documents(d.data for d in docs)
    rendered = [mask_secrets(d, KEY) for d in documents]
    changes = diff_objects(TargetMeta("web", "dev-use1", "dev"), [], rendered)
    diff, report = mask_result(masker, DiffResult(changes=changes, findings=[]), findings)
    return CheckResult(report, diff, "a" * 40, "b" * 40, ["apps/web/secrets.yaml"], {}, None, masker)


def outputs(result: CheckResult) -> str:
    runs = result_check_runs(result, external_id="o/r#1")
    return "\n".join(
        [
            *result.comment_parts(),
            json.dumps(result.to_json()),
            *(json.dumps(run.output(run.annotations)) for run in runs),
        ]
    )


VALUE = st.text(
    alphabet=string.ascii_letters + string.digits + " -_.!#$%^&*()[]{}|\\/'\"`~+=,;?<>@",
    min_size=6,
    max_size=40,
).map(lambda s: "Q7" + s.strip() + "x")
# a value holding a whole template expression (`${...}`, `{{ }}`) inside a template is filled in later,
# not a secret in Git (tests/validate covers that rule); planted values are literal
VALUE = VALUE.filter(lambda s: not TEMPLATE_EXPRESSION.search(s))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUE)
@example(value="Q70000${x")  # an unclosed `${` is no expression: still a secret in every shape
def test_a_planted_secret_value_never_appears_in_any_output(value: str) -> None:
    result = result_for(shapes(value), value)
    out = outputs(result)
    assert value not in out
    assert base64.b64encode(value.encode()).decode() not in out
    # every shape is flagged (the secrets rules and the masking agree on what a Secret is)
    flagged = [f for f in result.report.findings if f.rule.startswith("secrets.")]
    assert len(flagged) == 7


@settings(max_examples=40, deadline=None)
@given(
    key_id=st.text(alphabet=string.ascii_uppercase + string.digits, min_size=16, max_size=16).map(
        lambda s: "AKIA" + s
    ),
    body=st.text(alphabet=string.ascii_letters + string.digits + "+/", min_size=16, max_size=64),
    where=st.sampled_from(["configmap", "annotation", "env"]),
)
def test_aws_key_ids_and_private_keys_are_masked_in_any_object(key_id: str, body: str, where: str) -> None:
    pem = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"
    planted = f"id={key_id}\n{pem}"
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    if where == "configmap":
        obj["data"] = {"creds": planted}
    elif where == "annotation":
        obj["metadata"]["annotations"] = {"note": planted}
    else:
        obj = {
            "kind": "Deployment",
            "spec": {"template": {"spec": {"containers": [{"env": [{"value": planted}]}]}}},
        }
    masked = json.dumps(mask_object(obj, KEY))
    assert key_id not in masked and body not in masked
    assert "AKIA<secret hmac:" in masked and "-----BEGIN OPENSSH PRIVATE KEY----- <secret hmac:" in masked
    text = Masker(KEY).text(f"kustomize: bad value {planted!r} at line 3")
    assert key_id not in text and body not in text


def test_a_truncated_private_key_is_masked_over_its_base64_lines() -> None:
    cut = PEM.split("-----END")[0]
    masked = mask_patterns(f"+    key: |\n+      {cut.replace(chr(10), chr(10) + '+      ')}", KEY)
    assert "MIIEowIBAAKCAQEA7bq9ZL1xvZ3pQwerty" not in masked and "QWERTYUIOP" not in masked


def test_objects_without_secrets_are_returned_as_they_are() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "hunter2"}, "items": [{"b": 1}]}
    assert mask_object(obj, KEY) is obj
    assert mask_object({"example": "AKIAIOSFODNN7EXAMPLE"}, KEY) == {"example": "AKIAIOSFODNN7EXAMPLE"}


def test_kro_template_secrets_with_expressions_are_masked_not_flagged() -> None:
    rgd = (
        "apiVersion: kro.run/v1alpha1\nkind: ResourceGraphDefinition\nmetadata:\n  name: app\nspec:\n"
        "  resources:\n    - id: creds\n      template:\n        apiVersion: v1\n        kind: Secret\n"
        "        metadata:\n          name: creds\n        stringData:\n"
        "          password: ${schema.spec.password}\n"
    )
    docs, _ = parse_docs(rgd, "rgd.yaml")
    assert check_doc(None, docs[0]) == []  # type: ignore[arg-type]


def test_an_argocd_cluster_secret_keeps_its_name_and_server_and_masks_its_config() -> None:
    # adding a cluster to an ApplicationSet fleet: its name must not turn into a hash in every heading
    token = "eyJhbGciOiJSUzI1NiJ9.planted-bearer"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "prod-use1", "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
        "stringData": {
            "name": "prod-use1",
            "server": "https://ABC.gr7.us-east-1.eks.amazonaws.com",
            "project": "default",
            "config": json.dumps({"bearerToken": token}),
        },
    }
    config = secret["stringData"]["config"]
    masker = Masker(KEY)
    masker.learn_documents([secret])
    shown = masker.text(f"argocd/prod-use1/addons changed; config {config}")
    assert shown.startswith("argocd/prod-use1/addons changed; config <secret hmac:") and token not in shown
    masked = mask_object(secret, KEY)["stringData"]
    assert masked["name"] == "prod-use1" and masked["server"].startswith("https://ABC")
    assert token not in masked["config"]
    plain = {**secret, "metadata": {"name": "prod-use1"}}  # no Argo CD label: every value is secret
    assert mask_object(plain, KEY)["stringData"]["name"] != "prod-use1"
    docs, _ = parse_docs(yamldump.dump(secret, sort_keys=False), "clusters/prod-use1.yaml")
    assert [f.message for f in check_doc(None, docs[0])] == [  # type: ignore[arg-type]
        "Secret 'prod-use1' carries stringData in Git (keys: config); base64 is not encryption"
    ]


# ---------------------------------------------------------------- end to end on `gitops-bot check`

PLANTED = "PlantedValue-9f8e7d6c"
SCALAR = "PlantedScalar-1a2b3c4d"
LIST_SECRETS = f"""\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Secret
    metadata:
      name: db
      namespace: web
    stringData:
      password: {PLANTED}
  - apiVersion: v1
    kind: Secret
    metadata:
      name: scalar
      namespace: web
    stringData: {SCALAR}
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: leaked
      namespace: web
    data:
      AWS_ACCESS_KEY_ID: {AWS_KEY}
      key.pem: |
{"".join("        " + line + chr(10) for line in PEM.splitlines())}"""


def test_planted_secrets_in_a_list_never_reach_any_output(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repo({"apps/web/kustomization.yaml": "resources: []\n", "apps/flat/README.md": "flat\n"})
    git(repo, "checkout", "-q", "-b", "pr")
    commit(
        repo,
        {
            "apps/web/kustomization.yaml": "resources:\n  - secrets.yaml\n",
            "apps/web/secrets.yaml": LIST_SECRETS,
            "apps/flat/secrets.yaml": LIST_SECRETS,  # a plain folder: the List is not expanded by kustomize
        },
    )
    git(repo, "checkout", "-q", "main")
    logmask.install()
    result = build_check(repo, "main", "pr", secret_key=KEY)
    logging.getLogger("bot.test").warning("kustomize said: %s", f"bad stringData {SCALAR!r} {AWS_KEY} {PEM}")
    out = outputs(result) + caplog.text
    for leaked in (
        PLANTED,
        SCALAR,
        AWS_KEY,
        "MIIEowIBAAKCAQEA7bq9ZL1xvZ3pQwerty",
        "QWERTYUIOPASDFGHJKLZXCVBNM012345",
    ):
        assert leaked not in out, leaked
    rules = sorted((f.rule, f.path) for f in result.report.findings if f.rule.startswith("secrets."))
    for path in ("apps/flat/secrets.yaml", "apps/web/secrets.yaml"):
        assert ("secrets.plaintext", path) in rules and ("secrets.malformed", path) in rules
        assert ("secrets.aws-key", path) in rules and ("secrets.private-key", path) in rules
    assert "<secret hmac:" in out


def test_learn_secrets_reads_both_trees(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "s.yaml").write_text(
        yamldump.dump(secret("s", stringData={"k": "old-value-1"}), sort_keys=False)
    )
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "s.yaml").write_text(
        yamldump.dump(secret("s", stringData={"k": "new-value-2"}), sort_keys=False)
    )
    masker = Masker(KEY)
    learn_secrets(masker, (tmp_path / "a", tmp_path / "b"), ["s.yaml"])
    assert "old-value-1" not in masker.text("was old-value-1 now new-value-2")
    assert "new-value-2" not in masker.text("was old-value-1 now new-value-2")
