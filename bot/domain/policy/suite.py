"""``gator verify`` suites: run every ``Suite`` under a folder and report per case.

A suite (``apiVersion: test.gatekeeper.sh/v1alpha1``, ``kind: Suite``) lists tests; each
names a ``template`` and a ``constraint`` file and has ``cases``. A case reviews one
``object`` file (every document in it) with optional ``inventory`` files (exposed as
``data.inventory``) and checks ``assertions``: ``violations`` is ``yes`` (at least one),
``no`` (none) or a number (exactly that many), counting only violations whose message
contains ``message`` when that is given. Paths are relative to the suite file, and may not
leave the folder being verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.domain.policy.gatekeeper import (
    Constraint,
    PolicySet,
    Template,
    build_inventory,
    constraint_from,
    matches,
    review_of,
    template_from,
)
from bot.domain.policy.rego import CompiledTemplate, RegoError
from bot.domain.yamlio import YamlError, load_documents, to_plain


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of one case of one test of one suite."""

    suite: str
    test: str
    case: str
    passed: bool
    detail: str = ""


@dataclass(slots=True)
class SuiteReport:
    """Every case that ran; ``ok`` when all passed and at least one ran."""

    cases: list[CaseResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.passed]

    @property
    def ok(self) -> bool:
        return bool(self.cases) and not self.failed

    def render(self) -> str:
        """Return a plain-text report: one line per case, grouped by suite and test, then totals."""
        lines: list[str] = []
        last: tuple[str, str] | None = None
        for c in self.cases:
            if (c.suite, c.test) != last:
                lines.append(f"{c.suite} :: {c.test}")
                last = (c.suite, c.test)
            mark = "ok  " if c.passed else "FAIL"
            lines.append(f"  {mark} {c.case}" + (f": {c.detail}" if c.detail else ""))
        failed = len(self.failed)
        lines.append(f"{len(self.cases) - failed} passed, {failed} failed, {len(self.cases)} cases")
        if not self.cases:
            lines.append("no suite.yaml test suites found")
        return "\n".join(lines)


class _SuiteError(ValueError):
    pass


def _read_docs(root: Path, base: Path, rel: str) -> list[dict[str, Any]]:
    path = (base / rel).resolve()
    if not path.is_relative_to(root):
        raise _SuiteError(f"{rel}: path leaves the verified folder")
    if not path.is_file():
        raise _SuiteError(f"{rel}: file not found")
    try:
        docs = load_documents(path.read_text(encoding="utf-8", errors="replace"), rel)
    except YamlError as exc:
        raise _SuiteError(f"{rel}:{exc.finding.line}: {exc.finding.message}") from exc
    return [d for d in (to_plain(doc.data, rel) for doc in docs) if isinstance(d, dict)]


def _expected(assertion: dict[str, Any]) -> tuple[str, int]:
    raw = assertion.get("violations", "yes")
    if raw is True or str(raw).lower() == "yes":
        return "yes", 0
    if raw is False or str(raw).lower() == "no":
        return "no", 0
    try:
        return "count", int(raw)
    except (TypeError, ValueError) as exc:
        raise _SuiteError(f"assertion violations: {raw!r} is not yes, no or a number") from exc


def _check(assertions: list[dict[str, Any]], messages: list[str]) -> str:
    for assertion in assertions:
        wanted, count = _expected(assertion)
        needle = assertion.get("message")
        got = [m for m in messages if needle is None or str(needle) in m]
        about = f" with message containing {needle!r}" if needle is not None else ""
        if wanted == "yes" and not got:
            return f"expected at least one violation{about}, got none"
        if wanted == "no" and got:
            return f"expected no violations{about}, got {len(got)}: {got[0]!r}"
        if wanted == "count" and len(got) != count:
            return f"expected {count} violation(s){about}, got {len(got)}" + (f": {got!r}" if got else "")
    return ""


def _run_case(
    root: Path, base: Path, template: Template, constraint: Constraint, case: dict[str, Any]
) -> tuple[bool, str]:
    objects = _read_docs(root, base, str(case.get("object") or ""))
    inventory_objects: list[dict[str, Any]] = []
    for rel in case.get("inventory") or []:
        inventory_objects.extend(_read_docs(root, base, str(rel)))
    compiled = CompiledTemplate(template.rego, template.libs, build_inventory(inventory_objects))
    namespaces = {
        str((o.get("metadata") or {}).get("name")): o
        for o in inventory_objects
        if o.get("kind") == "Namespace"
    }
    messages: list[str] = []
    for obj in objects:
        if matches(constraint.match, obj, namespaces):
            messages.extend(
                str(v.get("msg", "")) for v in compiled.violations(review_of(obj), constraint.parameters)
            )
    problem = _check(list(case.get("assertions") or []), messages)
    return not problem, problem


def _run_suite(root: Path, suite_path: Path, report: SuiteReport) -> None:
    rel_suite = suite_path.relative_to(root).as_posix()
    base = suite_path.parent
    try:
        docs = _read_docs(root, base, suite_path.name)
    except _SuiteError as exc:
        report.cases.append(CaseResult(rel_suite, "-", "-", False, str(exc)))
        return
    for suite in docs:
        if suite.get("kind") != "Suite":
            continue
        suite_name = str((suite.get("metadata") or {}).get("name") or rel_suite)
        for test in suite.get("tests") or []:
            test_name = str(test.get("name") or "?")
            try:
                template = template_from(
                    _read_docs(root, base, str(test.get("template") or ""))[0], rel_suite
                )
                constraint = constraint_from(
                    _read_docs(root, base, str(test.get("constraint") or ""))[0], rel_suite
                )
            except (_SuiteError, ValueError, IndexError) as exc:
                report.cases.append(
                    CaseResult(suite_name, test_name, "(setup)", False, str(exc) or "empty file")
                )
                continue
            if constraint.kind != template.kind:
                detail = f"constraint kind {constraint.kind} does not match template kind {template.kind}"
                report.cases.append(CaseResult(suite_name, test_name, "(setup)", False, detail))
                continue
            for case in test.get("cases") or []:
                case_name = str(case.get("name") or "?")
                try:
                    passed, detail = _run_case(root, base, template, constraint, case)
                except (_SuiteError, RegoError) as exc:
                    passed, detail = False, str(exc)
                report.cases.append(CaseResult(suite_name, test_name, case_name, passed, detail))


def verify_suites(directory: Path) -> SuiteReport:
    """Run every ``suite.yaml`` (or other file holding ``kind: Suite``) under ``directory``."""
    root = directory.resolve()
    report = SuiteReport()
    candidates = [root] if root.is_file() else sorted(root.rglob("*.y*ml"))
    if root.is_file():
        root = root.parent
    for path in candidates:
        if path.suffix not in (".yaml", ".yml") or path.is_symlink():
            continue
        if path.name != "suite.yaml":
            head = path.read_text(encoding="utf-8", errors="replace")[:4096]
            if "kind: Suite" not in head:
                continue
        _run_suite(root, path, report)
    return report


__all__ = ["CaseResult", "PolicySet", "SuiteReport", "verify_suites"]
