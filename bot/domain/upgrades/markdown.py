"""The upgrade plan as GitHub markdown: for ``gitops-bot upgrade plan`` and the upgrade issue (pure)."""

from __future__ import annotations

from bot.domain import escape
from bot.domain.escape import code
from bot.domain.upgrades.plan import UpgradePlan
from bot.domain.validate.eks import format_minor

_ICON = {"error": "❌", "warning": "⚠️", "notice": "💬"}


def cell(value: str) -> str:
    """A name or path in a table cell: a code span, its ``|`` escaped (tables split on it)."""
    return code(value, table=True)


def plan_markdown(plan: UpgradePlan) -> str:
    """Return the plan: headline, hops, add-ons, removed APIs, node groups, steps, findings.

    Every string from the repository (names, paths, the environment, step titles, findings) goes
    through :mod:`bot.domain.escape`: a code span (with ``|`` escaped in tables) or literal text.
    """
    frm, to = format_minor(plan.from_version), format_minor(plan.to_version)
    how = "in place" if plan.strategy == "in-place" else f"blue/green (new cluster {code(plan.green)})"
    lines = [f"### Upgrade plan: {code(plan.cluster)} ({escape.text(plan.env)}) {frm} → {to}, {how}", ""]
    if not plan.hops:
        lines.append(f"Nothing to do: {code(plan.cluster)} already runs {frm}.")
    elif plan.strategy == "in-place":
        path = " → ".join([frm, *(format_minor(h) for h in plan.hops)])
        lines.append(
            f"**Hops:** {path} ({len(plan.hops)}; EKS upgrades a control plane one minor version at a time)"
        )
    else:
        lines.append(f"**Hops:** {frm} → {to} (the new cluster starts at {to})")
    if plan.addons:
        lines += [
            "",
            f"Add-on versions from {plan.addon_source}:",
            "",
            "| Add-on | From | To | File |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {cell(a.name)} | {cell(a.from_version)} | {cell(a.to_version)} "
            f"| {cell(f'{a.path}:{a.line}')} |"
            for a in plan.addons
        ]
    if plan.removed_apis:
        lines += [
            "",
            f"**APIs {to} no longer serves** (move these first):",
            "",
            "| Object | API | Removed in | Use | File |",
            "|---|---|---|---|---|",
        ]
        for r in plan.removed_apis:
            use = cell(r.removal.replacement) if r.removal.replacement else "—"
            lines.append(
                f"| {cell(f'{r.obj.kind}/{r.obj.name}')} | {cell(r.obj.api_version)} | "
                f"{format_minor(r.removal.removed_in)} | {use} | {cell(f'{r.obj.path}:{r.obj.line}')} |"
            )
    if plan.nodegroups:
        lines += ["", "| Node group | From | To | Skew now |", "|---|---|---|---:|"]
        lines += [
            f"| {cell(n.name)} | {format_minor(n.from_version)} | {format_minor(n.to_version)} | {n.skew} |"
            for n in plan.nodegroups
        ]
    if plan.steps:
        lines += ["", "**Steps** (each a pull request, checked and gated like any other):", ""]
        for i, step in enumerate(plan.steps, 1):
            files = ", ".join(code(f) for f in step.files)
            lines.append(f"{i}. {escape.text(step.title)}" + (f": {files}" if files else ""))
    if plan.findings:
        lines += ["", "<details><summary>Findings</summary>", ""]
        lines += [
            f"- {_ICON.get(f.severity.value, '')} {code(f'{f.path}:{f.line}')} "
            f"{escape.message(f.message)}. {escape.message(f.hint)}"
            for f in plan.findings
        ]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
