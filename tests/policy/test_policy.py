"""Gatekeeper policy: suites of the library, matching, enforcement actions, the CLI."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import main
from bot.domain.model import RenderedObject, Severity
from bot.domain.policy import evaluate, load_policy, matches, verify_suites
from bot.domain.policy.rego import CompiledTemplate, RegoError
from tests.conftest import FIXTURES

LIBRARY = FIXTURES / "gatekeeper-library"

REQUIRED_LABELS = (LIBRARY / "general" / "requiredlabels" / "template.yaml").read_text()


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def _constraint(action: str = "deny", match: str = "kinds: [{apiGroups: [''], kinds: ['Namespace']}]") -> str:
    return f"""
    apiVersion: constraints.gatekeeper.sh/v1beta1
    kind: K8sRequiredLabels
    metadata: {{name: need-owner}}
    spec:
      enforcementAction: {action}
      match: {{{match}}}
      parameters:
        labels: [{{key: owner}}]
    """


def _ns(name: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def test_every_library_suite_passes() -> None:
    report = verify_suites(LIBRARY)
    assert len(report.cases) == 43
    assert report.failed == []
    assert report.ok


def test_cli_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "verify", str(LIBRARY / "general" / "requiredlabels")]) == 0
    assert "5 passed, 0 failed" in capsys.readouterr().out
    broken = tmp_path / "lib"
    shutil.copytree(LIBRARY / "general" / "requiredlabels", broken)
    suite = broken / "suite.yaml"
    suite.write_text(suite.read_text().replace("violations: no", "violations: 2", 1))
    assert main(["policy", "verify", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "FAIL example-allowed: expected 2 violation(s), got 0" in out
    assert main(["policy", "verify", str(tmp_path / "missing")]) == 2


def test_suite_with_missing_object_file_fails_clearly(tmp_path: Path) -> None:
    shutil.copytree(LIBRARY / "general" / "replicalimits", tmp_path / "r")
    next((tmp_path / "r").rglob("example_allowed.yaml")).unlink()
    report = verify_suites(tmp_path)
    assert not report.ok
    assert any("file not found" in c.detail for c in report.failed)


def test_enforcement_actions_map_to_severities(tmp_path: Path) -> None:
    _write(tmp_path, "policies/template.yaml", REQUIRED_LABELS)
    objects = [_ns("team-a"), _ns("team-b", {"owner": "x"})]
    for action, severity in (
        ("deny", Severity.ERROR),
        ("warn", Severity.WARNING),
        ("dryrun", Severity.NOTICE),
    ):
        _write(tmp_path, "policies/constraint.yaml", _constraint(action))
        results = evaluate(load_policy(tmp_path, {}), objects)
        assert [(r.name, r.severity) for r in results] == [("team-a", severity)]
        assert "owner" in results[0].message


def test_policy_comes_from_configured_paths_and_can_be_disabled(tmp_path: Path) -> None:
    _write(tmp_path, "gk/template.yaml", REQUIRED_LABELS)
    _write(tmp_path, "gk/constraint.yaml", _constraint())
    assert load_policy(tmp_path, {}).constraints == []
    policy = load_policy(tmp_path, {"policy": {"paths": ["gk"]}})
    assert list(policy.templates) == ["K8sRequiredLabels"] and len(policy.constraints) == 1
    assert load_policy(tmp_path, {"policy": {"paths": ["gk"], "enabled": False}}).constraints == []
    assert load_policy(tmp_path, {"policy": {"paths": ["../outside"]}}).constraints == []


def test_rendered_objects_keep_source_and_target(tmp_path: Path) -> None:
    _write(tmp_path, "policies/t.yaml", REQUIRED_LABELS)
    _write(tmp_path, "policies/c.yaml", _constraint())
    obj = RenderedObject("dev/eu", "eu-1", "dev", "clusters/eu-1/ns.yaml", _ns("payments"))
    [result] = evaluate(load_policy(tmp_path, {}), [obj])
    finding = result.to_finding()
    assert finding.rule == "policy.gatekeeper" and finding.path == "clusters/eu-1/ns.yaml"
    assert "K8sRequiredLabels/need-owner on Namespace payments (target dev/eu)" in finding.message


def test_missing_template_and_broken_rego_are_reported(tmp_path: Path) -> None:
    _write(tmp_path, "policies/c.yaml", _constraint())
    [result] = evaluate(load_policy(tmp_path, {}), [_ns("a")])
    assert result.severity is Severity.WARNING and "no ConstraintTemplate defines kind" in result.message
    _write(tmp_path, "policies/t.yaml", REQUIRED_LABELS.replace("violation[", "violation[[[", 1))
    [result] = evaluate(load_policy(tmp_path, {}), [_ns("a")])
    assert "Rego compile error" in result.message
    _write(
        tmp_path,
        "policies/t.yaml",
        "kind: ConstraintTemplate\napiVersion: templates.gatekeeper.sh/v1\nspec: {}\n",
    )
    policy = load_policy(tmp_path, {})
    assert policy.errors and "spec.crd.spec.names.kind" in policy.errors[0].message


def test_compiled_template_rejects_source_without_package() -> None:
    with pytest.raises(RegoError, match="package"):
        CompiledTemplate("violation[x] { x := 1 }")


@pytest.mark.parametrize(
    ("match", "obj", "expected"),
    [
        (
            {"kinds": [{"apiGroups": ["apps"], "kinds": ["Deployment"]}]},
            {"apiVersion": "apps/v1", "kind": "Deployment"},
            True,
        ),
        (
            {"kinds": [{"apiGroups": ["apps"], "kinds": ["Deployment"]}]},
            {"apiVersion": "v1", "kind": "Pod"},
            False,
        ),
        ({"kinds": [{"apiGroups": ["*"], "kinds": ["*"]}]}, {"apiVersion": "x.io/v1", "kind": "Any"}, True),
        ({"namespaces": ["prod-*"]}, {"kind": "Pod", "metadata": {"namespace": "prod-eu"}}, True),
        ({"namespaces": ["prod-*"]}, {"kind": "Pod", "metadata": {"namespace": "dev"}}, False),
        (
            {"excludedNamespaces": ["kube-*"]},
            {"kind": "Pod", "metadata": {"namespace": "kube-system"}},
            False,
        ),
        (
            {"excludedNamespaces": ["kube-system"]},
            {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "kube-system"}},
            False,
        ),
        ({"namespaces": ["default"]}, {"kind": "ClusterRole", "metadata": {"name": "x"}}, True),
        ({"scope": "Cluster"}, {"kind": "Pod", "metadata": {"namespace": "a"}}, False),
        ({"scope": "Namespaced"}, {"kind": "Pod", "metadata": {"namespace": "a"}}, True),
        ({"name": "web-*"}, {"kind": "Pod", "metadata": {"name": "web-1"}}, True),
        (
            {"labelSelector": {"matchLabels": {"tier": "web"}}},
            {"kind": "Pod", "metadata": {"labels": {"tier": "web"}}},
            True,
        ),
        (
            {"labelSelector": {"matchLabels": {"tier": "web"}}},
            {"kind": "Pod", "metadata": {"labels": {"tier": "db"}}},
            False,
        ),
        (
            {"labelSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}},
            {"kind": "Pod", "metadata": {"labels": {"tier": "web"}}},
            True,
        ),
        (
            {"labelSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}},
            {"kind": "Pod", "metadata": {}},
            False,
        ),
        (
            {"namespaceSelector": {"matchLabels": {"env": "prod"}}},
            {"kind": "Pod", "metadata": {"namespace": "shop"}},
            True,
        ),
        (
            {"namespaceSelector": {"matchLabels": {"env": "prod"}}},
            {"kind": "Pod", "metadata": {"namespace": "lab"}},
            False,
        ),
    ],
)
def test_match_criteria(match: dict[str, object], obj: dict[str, object], expected: bool) -> None:
    namespaces = {"shop": _ns("shop", {"env": "prod"}), "lab": _ns("lab", {"env": "dev"})}
    assert matches(match, obj, namespaces) is expected


def test_referential_template_sees_inventory_of_the_batch(tmp_path: Path) -> None:
    src = LIBRARY / "general" / "uniqueingresshost"
    _write(tmp_path, "policies/t.yaml", (src / "template.yaml").read_text())
    _write(
        tmp_path,
        "policies/c.yaml",
        """
        apiVersion: constraints.gatekeeper.sh/v1beta1
        kind: K8sUniqueIngressHost
        metadata: {name: unique-host}
        spec: {match: {kinds: [{apiGroups: [networking.k8s.io], kinds: [Ingress]}]}}
        """,
    )

    def ingress(name: str, host: str) -> dict[str, object]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": name, "namespace": "web"},
            "spec": {"rules": [{"host": host}]},
        }

    policy = load_policy(tmp_path, {})
    assert evaluate(policy, [ingress("a", "a.example.com"), ingress("b", "b.example.com")]) == []
    clash = evaluate(policy, [ingress("a", "same.example.com"), ingress("b", "same.example.com")])
    assert sorted(r.name for r in clash) == ["a", "b"]
    assert "conflicts with an existing ingress" in clash[0].message


def test_malformed_match_is_reported_not_raised(tmp_path: Path) -> None:
    _write(tmp_path, "policies/t.yaml", REQUIRED_LABELS)
    _write(tmp_path, "policies/c.yaml", _constraint(match="kinds: [Namespace]"))
    [result] = evaluate(load_policy(tmp_path, {}), [_ns("a")])
    assert result.severity is Severity.WARNING and "spec.match is malformed" in result.message


def test_evaluation_in_worker_processes_gives_the_same_results(tmp_path: Path) -> None:
    _write(tmp_path, "policies/t.yaml", REQUIRED_LABELS)
    _write(tmp_path, "policies/c.yaml", _constraint())
    _write(
        tmp_path,
        "policies/c2.yaml",
        _constraint().replace("need-owner", "need-team").replace("owner}", "team}"),
    )
    objects = [_ns(f"ns-{i}", {"owner": "x"} if i % 3 else {}) for i in range(700)]
    policy = load_policy(tmp_path, {})
    one = evaluate(policy, objects, workers=1)
    assert len(one) == 234 + 700  # need-owner: every third namespace; need-team: all of them
    # 1,400 pairs in chunks of 250 over two processes: same results, same order.
    assert evaluate(policy, objects, workers=2) == one


def test_identical_pairs_are_folded_before_they_are_cut_into_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.domain.policy import gatekeeper

    _write(tmp_path, "policies/t.yaml", REQUIRED_LABELS)
    _write(tmp_path, "policies/c.yaml", _constraint())
    # One manifest rendered for 600 targets, and 300 distinct ones.
    objects = [*(_ns("same") for _ in range(600)), *(_ns(f"ns-{i}", {"owner": "x"}) for i in range(300))]
    policy = load_policy(tmp_path, {})
    sent: list[int] = []
    real = gatekeeper._run_chunks

    def spy(chunks: list[Any], workers: int) -> Any:
        sent.extend(len(c.pairs) for c in chunks)
        assert all(len(c.reviews) == len({r for r, _ in c.pairs}) for c in chunks)  # only its own texts
        return real(chunks, workers)

    monkeypatch.setattr(gatekeeper, "_run_chunks", spy)
    results = evaluate(policy, objects, workers=2)
    assert sum(sent) == 301 and len(sent) == 2  # 900 pairs, 301 distinct, chunks of 250
    assert len(results) == 600 and evaluate(policy, objects, workers=1) == results


def test_evaluation_falls_back_to_this_process_when_workers_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.domain.policy import gatekeeper

    _write(tmp_path, "policies/t.yaml", REQUIRED_LABELS)
    _write(tmp_path, "policies/c.yaml", _constraint())
    objects = [_ns(f"ns-{i}", {"owner": "x"} if i % 3 else {}) for i in range(600)]
    policy = load_policy(tmp_path, {})

    def no_processes(workers: int) -> Any:
        raise OSError("process creation is not allowed here")

    monkeypatch.setattr(gatekeeper, "_pool", no_processes)
    assert evaluate(policy, objects, workers=2) == evaluate(policy, objects, workers=1)


def test_small_evaluations_stay_in_this_process() -> None:
    from bot.domain.policy.gatekeeper import PARALLEL_MIN_PAIRS, default_workers

    assert default_workers(10) == 1
    assert default_workers(PARALLEL_MIN_PAIRS - 1) == 1
    assert default_workers(PARALLEL_MIN_PAIRS) >= 1


def test_verify_accepts_a_single_suite_file() -> None:
    report = verify_suites(LIBRARY / "general" / "httpsonly" / "suite.yaml")
    assert [c.case for c in report.cases] == [
        "example-allowed",
        "example-disallowed",
        "example-allowed-tls-optional",
        "example-disallowed-tls-optional",
    ]
    assert report.ok


CONFLICT_REGO = """package conflict
x = 1 { input.review.object.a }
x = 2 { input.review.object.b }
violation[{"msg": msg}] { msg := sprintf("x is %v", [x]) }
"""


def test_batch_gives_per_pair_results_and_isolates_a_runtime_error() -> None:
    compiled = CompiledTemplate(CONFLICT_REGO)
    reviews = ['{"object": {"a": true}}', '{"object": {"a": true, "b": true}}', '{"object": {}}']
    first, broken, empty = compiled.violations_batch(reviews, ["{}"], [(0, 0), (1, 0), (2, 0)])
    assert first == [{"msg": "x is 1"}] and empty == []
    assert isinstance(broken, RegoError) and "rule conflicts with rule" in str(broken)
    assert "Stack backtrace" not in str(broken)


def test_batch_evaluates_each_pair_with_its_own_parameters() -> None:
    template = REQUIRED_LABELS.split("rego: |", 1)[1]
    compiled = CompiledTemplate(textwrap.dedent(template))
    review = '{"object": {"metadata": {"name": "a", "labels": {"owner": "x"}}}}'
    owner, team = '{"labels": [{"key": "owner"}]}', '{"labels": [{"key": "team"}]}'
    ok, missing = compiled.violations_batch([review], [owner, team], [(0, 0), (0, 1)])
    assert ok == []
    assert len(missing) == 1 and "team" in missing[0]["msg"]  # type: ignore[index]


def test_runtime_error_in_one_object_does_not_hide_the_others(tmp_path: Path) -> None:
    body = textwrap.indent(CONFLICT_REGO, " " * 14)
    _write(
        tmp_path,
        "policies/t.yaml",
        f"""
        apiVersion: templates.gatekeeper.sh/v1
        kind: ConstraintTemplate
        metadata: {{name: conflict}}
        spec:
          crd: {{spec: {{names: {{kind: Conflict}}}}}}
          targets:
          - target: admission.k8s.gatekeeper.sh
            rego: |
{body}
        """,
    )
    constraint = (
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: Conflict\nmetadata: {name: no-conflict}\n"
    )
    _write(tmp_path, "policies/c.yaml", constraint)
    objs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}, **extra}
        for n, extra in (
            ("good", {"a": True}),
            ("bad", {"a": True, "b": True}),
        )
    ]
    results = evaluate(load_policy(tmp_path, {}), objs)
    assert [(r.name, r.message) for r in results if r.enforcement_action == "deny"] == [("good", "x is 1")]
    [error] = [r for r in results if r.enforcement_action == "error"]
    assert "rule conflicts with rule" in error.message
