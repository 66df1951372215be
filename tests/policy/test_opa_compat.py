"""Rego written for OPA behaves as in OPA although regorus reads some of it differently.

The gatekeeper-library templates (tests/fixtures/gatekeeper-library) are rewritten into the
OPA-only forms seen in real policy repositories (an expression line starting with ``(``,
``sprintf`` with fewer arguments than verbs, chained rule bodies ``{ } { }``); each library
suite must still pass. What regorus still cannot evaluate is a warning on the policy, never an
error on the author's objects.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.domain.model import CheckInput, Severity
from bot.domain.policy import verify_suites
from bot.domain.policy.rego import CompiledTemplate, opa_compatible
from bot.domain.validate import validate
from tests.conftest import FIXTURES
from tests.validate.helpers import TODAY, write_tree

LIBRARY = FIXTURES / "gatekeeper-library" / "general"
INDENT = "        "


def _library_copy(tmp_path: Path, name: str, old: str, new: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(LIBRARY / name, folder)
    template = folder / "template.yaml"
    text = template.read_text()
    assert old in text, old
    template.write_text(text.replace(old, new))
    return folder


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        # Chained bodies: one rule head, several bodies (a logical OR in OPA).
        (
            "disallowedtags",
            f"}}\n{INDENT}input_containers[c] {{\n{INDENT}    c := input.review.object.spec.init",
            f"}} {{\n{INDENT}    c := input.review.object.spec.init",
        ),
        (
            "automount-serviceaccount-token",
            f"}}\n\n{INDENT}input_containers[c] {{\n{INDENT}    c := input.review.object.spec.init",
            f"}} {{  # init containers\n{INDENT}    c := input.review.object.spec.init",
        ),
        # A parenthesised expression on its own line after a complete expression.
        (
            "requiredlabels",
            "missing := required - provided\n",
            f"missing := required - provided\n{INDENT}    (count(missing) > 0)\n",
        ),
    ],
)
def test_library_suites_pass_with_opa_only_forms(tmp_path: Path, name: str, old: str, new: str) -> None:
    report = verify_suites(_library_copy(tmp_path, name, old, new))
    assert report.cases and report.failed == []


def test_sprintf_with_missing_arguments_prints_what_opa_prints() -> None:
    source = (
        "package t\n"
        'violation[{"msg": msg}] {\n'
        "  x := input.review.n\n"
        '  msg := sprintf("n is %v, limit %d, ratio %.2f%%", [x])\n'
        "}\n"
    )
    [violation] = CompiledTemplate(source).violations({"n": 3}, {})
    assert violation["msg"] == "n is 3, limit %!d(MISSING), ratio %!f(MISSING)%"


def test_rewrites_keep_line_numbers_and_leave_plain_rego_alone() -> None:
    source = "package t\n\np { input.a }\n{\n  input.b\n}\nq {\n  x := input.a\n  (x > 1)\n}\n"
    out = opa_compatible(source)
    assert out.count("\n") == source.count("\n")
    assert "x := input.a;" in out
    plain = (LIBRARY / "requiredlabels" / "template.yaml").read_text()
    assert opa_compatible(plain) == plain


def test_what_cannot_be_evaluated_is_a_warning_on_the_policy(tmp_path: Path) -> None:
    template = (LIBRARY / "requiredlabels" / "template.yaml").read_text()
    # sprintf arguments that are not an array literal cannot be padded; regorus fails at run time.
    template = template.replace(
        'def_msg := sprintf("you must provide labels: %v", [missing])',
        'args := [missing]\n              def_msg := sprintf("you must provide labels: %v %v", args)',
    )
    constraint = (
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredLabels\nmetadata: {name: owner}\n"
        "spec:\n  match: {kinds: [{apiGroups: [''], kinds: [Namespace]}]}\n"
        "  parameters: {labels: [{key: owner}]}\n"
    )
    base = write_tree(
        tmp_path / "base", {"policies/template.yaml": template, "policies/owner.yaml": constraint}
    )
    head = write_tree(
        tmp_path / "head", {"ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"}
    )
    config = {"version": 1, "policy": {"paths": ["policies"]}}
    check = CheckInput(base_dir=base, head_dir=head, config=config, changed_paths=("ns.yaml",))
    findings = validate(check, today=TODAY)
    assert findings and all(f.severity is Severity.WARNING for f in findings)
    assert {f.path for f in findings} == {"policies/template.yaml"}
    assert "fix it on the base branch" in findings[0].hint
