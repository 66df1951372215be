"""Validation of a pull request's repository content: the ``gitops-bot/validate`` checker.

:func:`validate` runs every rule on the files the PR changed in head (plus whole-fleet
facts such as name uniqueness, CRDs and kro graphs from the whole head tree), with the
configuration of the **base** branch and Gatekeeper policy read from the **base** tree.
:func:`validation_summary` and :func:`annotations` turn findings into a check run;
:func:`self_service_decision` says whether a request may be approved by the bot.

Rules (stable names): ``yaml.syntax``, ``yaml.duplicate-key``, ``schema``,
``schema.unknown-kind``, ``schema.version``, ``kro.*``, ``fleet.*``, ``eks.version``,
``eks.skew``, ``eks.upgrade``, ``eks.addon``, ``secrets.*``, ``policy.gatekeeper``,
``policy.load``.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from bot.domain import escape
from bot.domain.config import CONFIG_PATH, ConfigError, parse_config
from bot.domain.governance.globs import any_match
from bot.domain.model import CheckInput, Finding, RenderedObject, Severity
from bot.domain.policy import evaluate, load_policy
from bot.domain.validate import fleet, kro, layout, schemas, secrets
from bot.domain.validate.base import (
    YAML_SUFFIXES,
    Context,
    Doc,
    TreeReader,
    as_dict,
    iter_yaml_files,
    parse_docs,
    parse_tree_docs,
    read_text,
    unreadable,
)
from bot.domain.validate.eks import EksCatalog, parse_minor

__all__ = [
    "Decision",
    "EksCatalog",
    "annotations",
    "self_service_decision",
    "validate",
    "validation_summary",
]

CHECK_NAME = "gitops-bot/validate"
_KIND_LINE = re.compile(r"^kind:\s*['\"]?(CustomResourceDefinition|ResourceGraphDefinition)\b", re.MULTILINE)


def _load_tree_facts(ctx: Context) -> None:
    """Index CRDs and RGDs of the whole head tree (cheap text filter before parsing)."""
    root = ctx.check.head_dir
    reader = TreeReader(root)
    for rel in iter_yaml_files(root):
        text = ctx.texts.get(rel) or reader.read(rel)
        if text and layout.wants_patches(rel, text):
            layout.add_patch_refs(ctx.patches, rel, parse_docs(text, rel)[0])
        if not text or not _KIND_LINE.search(text):
            continue
        docs, _ = parse_tree_docs(text, rel)
        for doc in docs:
            if not isinstance(doc.data, dict):
                continue
            spec = doc.data.get("spec") or {}
            if doc.kind == "CustomResourceDefinition" and isinstance(spec, dict):
                group, names = spec.get("group"), spec.get("names") or {}
                if group and isinstance(names, dict) and names.get("kind"):
                    key = (str(group), str(names["kind"]))
                    if key in ctx.head_crds:
                        ctx.other_crds.setdefault(key, []).append(doc.data)
                    else:
                        ctx.head_crds[key] = doc.data
            elif doc.kind == "ResourceGraphDefinition" and doc.group == "kro.run" and isinstance(spec, dict):
                schema = spec.get("schema") or {}
                if isinstance(schema, dict) and schema.get("kind"):
                    group = str(schema.get("group") or "kro.run")
                    key = (group, str(schema["kind"]))
                    if key in ctx.rgds:
                        ctx.other_rgds.setdefault(key, []).append(doc)
                    else:
                        ctx.rgds[key] = doc


def _request_kind_words(config: dict[str, Any]) -> set[str]:
    return {str(k.get("kind")) for k in fleet.kind_mappings(config) if k.get("kind")}


def _fleet_facts(
    root: Any,
    config: dict[str, Any],
    texts: dict[str, str] | None = None,
    *,
    names_in: set[str] | None = None,
    paths_in: set[str] | None = None,
) -> tuple[dict[str, list[tuple[str, str]]], dict[tuple[str, str], tuple[int, int]]]:
    """Return cluster names -> [(path, region)] and (path, name) -> version over a tree.

    Only files under ``paths_in`` (when given) whose text contains one of ``names_in``
    (when given) are parsed: a file that does not mention a name cannot hold a cluster of
    that name, which keeps a 500-cluster fleet cheap.
    """
    names: dict[str, list[tuple[str, str]]] = {}
    versions: dict[tuple[str, str], tuple[int, int]] = {}
    words = _request_kind_words(config)
    pattern = re.compile(
        r"^\s*(?:-\s*)?kind:\s*['\"]?(" + "|".join(map(re.escape, sorted(words))) + r")['\"]?\s*$",
        re.MULTILINE,
    )
    reader = TreeReader(root)
    for rel in sorted(paths_in) if paths_in is not None else iter_yaml_files(root):
        if not fleet.in_scope(rel, config):
            continue
        text = (texts or {}).get(rel) or reader.read(rel)
        if not text or (names_in is not None and not any(n in text for n in names_in)):
            continue
        if not pattern.search(text):
            continue
        docs, _ = parse_docs(text, rel)
        for req in fleet.requests_in(docs, config):
            name = req.name
            if req.role != "cluster" or not name:
                continue
            names.setdefault(name, []).append((rel, str(req.value("region") or "")))
            v = parse_minor(req.value("version")) if not isinstance(req.value("version"), float) else None
            if v:
                versions[(rel, name)] = v
    return names, versions


def _patch_findings(ctx: Context, patches: list[Doc]) -> list[Finding]:
    """Judge patch files through the rendered objects they patch, never as whole objects.

    A patch naming a kind and a name is matched with the head's rendered objects of that
    kind and name; each is checked against its schema, and a problem is pinned to the
    patch's line for that field. Secrets rules still read the patch itself.
    """
    findings: list[Finding] = []
    for doc in patches:
        findings.extend(secrets.check_doc(ctx, doc) if ctx.section("secrets").get("enabled", True) else [])
        if not doc.kind or not doc.name:
            continue
        found = False
        for target, obj in layout.patched_objects(doc.data, ctx.check.rendered_head):
            found = True
            whole = Doc(doc.path, doc.index, doc.line, doc.node, obj)
            for f in schemas.check_object(ctx, whole):
                findings.append(replace(f, message=f"after patching ({target}): {f.message}"))
        if not found:
            findings.append(
                doc.finding(
                    "schema.patch",
                    Severity.NOTICE,
                    (),
                    f"patch for {doc.kind} {doc.name!r} (used by {ctx.patches[doc.path]}) is judged "
                    "only through the rendered object, and no rendered object here matches it",
                    "Nothing to do if the patch applies; check that its kind and name match the object "
                    "it patches.",
                )
            )
    return findings


def _config_findings(text: str) -> list[Finding]:
    """Check a changed ``.github/gitops-bot.yml``: it takes effect after merge, so say now if it is broken."""
    try:
        parse_config(text)
    except ConfigError as exc:
        return [
            Finding(
                f.rule,
                f.severity,
                f.path,
                f.line,
                f.message,
                f.hint + " (The change takes effect after merge.)",
            )
            for f in exc.findings
        ]
    return []


def _policy_findings(ctx: Context, docs: list[Doc]) -> list[Finding]:
    policy = load_policy(ctx.check.base_dir, ctx.config)
    findings = list(policy.errors)
    if not policy.constraints:
        return findings
    lines: dict[tuple[str, str, str, str], int] = {}
    objects: list[RenderedObject] = list(ctx.check.rendered_head)
    for doc in docs:
        if doc.api_version and doc.kind and not kro.is_graph_doc(doc):
            objects.append(RenderedObject("", "", "", doc.path, doc.data))
            meta = doc.data.get("metadata") or {}
            ns = str(meta.get("namespace") or "") if isinstance(meta, dict) else ""
            lines[(doc.path, doc.kind, ns, doc.name)] = doc.line
    for result in evaluate(policy, objects):
        key = (result.source_path, result.kind, result.namespace, result.name)
        if key not in lines and result.source_path and result.source_path not in ctx.texts:
            _index_lines(ctx, result.source_path, lines)
        line = lines.get(key) or lines.get((result.source_path, result.kind, "", result.name), 1)
        findings.append(result.to_finding(line))
    return findings


def _index_lines(ctx: Context, rel: str, lines: dict[tuple[str, str, str, str], int]) -> None:
    """Record the line of every object in a head file (to pin rendered objects to their source)."""
    ctx.texts[rel] = text = read_text(ctx.check.head_dir, rel) or ""
    docs, _ = parse_docs(text, rel) if rel.endswith(YAML_SUFFIXES) else ([], [])
    for doc in docs:
        if isinstance(doc.data, dict):
            ns = str(as_dict(doc.data.get("metadata")).get("namespace") or "")
            lines.setdefault((rel, doc.kind, ns, doc.name), doc.line)


def validate(
    check: CheckInput,
    *,
    eks: EksCatalog | None = None,
    today: date | None = None,
) -> list[Finding]:
    """Run every validation rule for one base..head check; return the findings, sorted.

    Files that are deleted in head are skipped; binary and oversized files are scanned for
    nothing. ``eks`` defaults to the bundled calendar (with no add-on data); ``today``
    defaults to the current date (tests pass a fixed day).
    """
    ctx = Context(
        check=check,
        config=dict(check.config or {}),
        eks=eks or EksCatalog.bundled(),
        today=today or date.today(),
    )
    findings: list[Finding] = []
    secret_cfg = ctx.section("secrets")
    ignore = [str(p) for p in secret_cfg.get("ignore_paths") or []]
    for rel in sorted(set(check.changed_paths)):
        text = read_text(check.head_dir, rel)
        if text is None:
            findings.extend(unreadable(check.head_dir, rel))  # too large or binary: fail closed
            continue
        ctx.texts[rel] = text
        if secret_cfg.get("enabled", True) and not any_match(ignore, rel):
            findings.extend(secrets.scan_text(rel, text))
        if rel == CONFIG_PATH:
            findings.extend(_config_findings(text))
            continue
        if rel.endswith(YAML_SUFFIXES) and layout.chart_root(check.head_dir, rel) is None:
            docs, problems = parse_docs(text, rel)
            findings.extend(problems)
            ctx.changed.extend(d for d in docs if isinstance(d.data, dict))
    _load_tree_facts(ctx)
    patch_paths = {d.path for d in ctx.changed} & set(ctx.patches)
    patch_paths -= layout.listed_as_resources(check.head_dir, patch_paths)
    patches = [d for d in ctx.changed if d.path in patch_paths]
    ctx.changed = [d for d in ctx.changed if d.path not in patch_paths]
    findings.extend(_patch_findings(ctx, patches))
    for doc in ctx.changed:
        findings.extend(schemas.check_object(ctx, doc))
        if schemas.is_graph(doc):
            findings.extend(kro.check_graph(doc))
            for sub in kro.resource_objects(doc):
                findings.extend(schemas.check_object(ctx, sub))
        if secret_cfg.get("enabled", True):
            findings.extend(secrets.check_doc(ctx, doc))
    requests = fleet.requests_in(ctx.changed, ctx.config)
    if requests:
        wanted = {r.name for r in requests if r.name}
        names, _ = _fleet_facts(check.head_dir, ctx.config, ctx.texts, names_in=wanted)
        changed = {d.path for d in ctx.changed}
        _, base_versions = _fleet_facts(check.base_dir, ctx.config, paths_in=changed)
        findings.extend(fleet.fleet_rules(ctx, requests, names))
        findings.extend(fleet.eks_rules(ctx, requests, base_versions))
    findings.extend(fleet.addon_rules(ctx, ctx.changed, ctx.eks.addons))
    findings.extend(_policy_findings(ctx, ctx.changed))
    return sorted(set(findings), key=Finding.sort_key)


# ---------------------------------------------------------------- check-run output


def _escape(text: str) -> str:
    return escape.message(text, table=True)


def validation_summary(findings: Sequence[Finding]) -> tuple[str, str]:
    """Return the check run's title and markdown summary (counts, then a table of findings).

    The table lists at most 50 rows (errors first); the annotations carry every finding.
    """
    counts = Counter(f.severity for f in findings)
    errors, warnings, notices = counts[Severity.ERROR], counts[Severity.WARNING], counts[Severity.NOTICE]
    if not findings:
        return (
            "Validation passed",
            "No problems found: YAML, schemas, kro graphs, fleet rules, EKS versions, secrets and policy "
            "all pass.",
        )
    parts = [
        f"{n} {label}{'s' if n != 1 else ''}"
        for n, label in ((errors, "error"), (warnings, "warning"), (notices, "notice"))
        if n
    ]
    title = ("Validation failed: " if errors else "Validation passed with ") + ", ".join(parts)
    icon = {Severity.ERROR: ":x:", Severity.WARNING: ":warning:", Severity.NOTICE: ":information_source:"}
    ordered = sorted(findings, key=lambda f: (f.severity.rank, f.path, f.line, f.rule))
    lines = [
        f"**{title}.** Errors block the merge; warnings and notices do not.",
        "",
        "| | Rule | Where | Problem | What to do |",
        "|---|---|---|---|---|",
    ]
    for f in ordered[:50]:
        lines.append(
            f"| {icon[f.severity]} | `{f.rule}` | {escape.code(f'{f.path}:{f.line}', table=True)} | "
            f"{_escape(f.message)} | "
            f"{_escape(f.hint)} |"
        )
    if len(ordered) > 50:
        lines.append("")
        lines.append(f"<details><summary>{len(ordered) - 50} more findings</summary>\n")
        lines.extend(
            f"- `{f.rule}` {escape.code(f'{f.path}:{f.line}')}: {_escape(f.message)}" for f in ordered[50:500]
        )
        lines.append("\n</details>")
    by_rule = Counter(f.rule for f in findings)
    lines.append("")
    lines.append("By rule: " + ", ".join(f"`{r}` {n}" for r, n in sorted(by_rule.items())))
    return title, "\n".join(lines)


def annotations(findings: Sequence[Finding]) -> list[dict[str, Any]]:  # type: ignore[no-redef]
    """Return GitHub check-run annotation dicts, one per finding (the caller batches 50 per request).

    Findings without a file (path empty or ``(rendered)``) appear only in the summary.
    """
    out: list[dict[str, Any]] = []
    for f in sorted(findings, key=Finding.sort_key):
        if not f.path or f.path.startswith("("):
            continue  # no file to pin it to (e.g. a rendered object without a source): summary only
        line = max(1, f.line)
        ann: dict[str, Any] = {
            "path": f.path,
            "start_line": line,
            "end_line": max(line, f.end_line or line),
            "annotation_level": f.severity.annotation_level,
            "title": f.rule,
            "message": (f.message + (f"\n\nHint: {f.hint}" if f.hint else ""))[:64000],
        }
        if f.column and (f.end_line or line) == line:
            ann["start_column"] = f.column
            ann["end_column"] = f.column
        out.append(ann)
    return out


# ---------------------------------------------------------------- self-service


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a request may be approved and merged by the bot, and why (not)."""

    eligible: bool
    reasons: list[str] = field(default_factory=list)


def self_service_decision(check: CheckInput, findings: Sequence[Finding]) -> Decision:
    """Decide whether the PR is a low-risk request the bot may approve and merge (off by default).

    Eligible only when ``self_service.enabled`` is true, no finding is an error or warning,
    every changed file is a cluster request file matching ``self_service.paths`` (if set),
    at most ``max_files`` files changed, and every request is in an allowed environment
    with ``maxSize`` within ``max_nodes`` and an allowed instance type when configured.
    ``reasons`` explains each failed criterion, or what made it eligible.
    """
    config = dict(check.config or {})
    cfg = config.get("self_service") or {}
    if not cfg.get("enabled", False):
        return Decision(False, ["self-service is off (self_service.enabled is false in the base config)"])
    reasons: list[str] = []
    blocking = [f for f in findings if f.severity in (Severity.ERROR, Severity.WARNING)]
    if blocking:
        reasons.append(f"{len(blocking)} error/warning finding(s) must be fixed first")
    paths = sorted(set(check.changed_paths))
    if not paths:
        reasons.append("the pull request changes no files")
    if len(paths) > int(cfg.get("max_files", 5)):
        reasons.append(f"{len(paths)} files changed; self-service allows at most {cfg.get('max_files', 5)}")
    allowed_paths = [str(p) for p in cfg.get("paths") or []]
    envs = [str(e) for e in cfg.get("environments") or ["dev"]]
    max_nodes = cfg.get("max_nodes")
    types = [str(t) for t in cfg.get("instance_types") or []]
    requests: list[fleet.ClusterRequest] = []
    for rel in paths:
        if allowed_paths and not any_match(allowed_paths, rel):
            reasons.append(f"{rel} is outside the self-service paths ({', '.join(allowed_paths)})")
            continue
        text = read_text(check.head_dir, rel)
        if text is None:
            reasons.append(f"{rel} is deleted or unreadable; deletions need a human")
            continue
        docs, problems = parse_docs(text, rel)
        found = fleet.requests_in(docs, config) if not problems else []
        if not found:
            reasons.append(f"{rel} is not a cluster request")
        requests.extend(found)
    for req in requests:
        label = req.name or req.doc.path
        if req.environment not in envs:
            reasons.append(
                f"{label}: environment {req.environment or '(unknown)'} is not self-service "
                f"({', '.join(envs)})"
            )
        size = req.value("max_size")
        if max_nodes is not None and isinstance(size, int) and size > int(max_nodes):
            reasons.append(f"{label}: maxSize {size} is above the self-service limit of {max_nodes}")
        itypes = req.value("instance_types") or []
        if types and isinstance(itypes, list):
            for itype in itypes:
                if not any(fnmatch.fnmatchcase(str(itype), t) for t in types):
                    reasons.append(f"{label}: instance type {itype} is not self-service")
    if reasons:
        return Decision(False, reasons)
    return Decision(True, [f"{len(requests)} low-risk request(s) in {', '.join(envs)} pass every check"])
