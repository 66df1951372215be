"""Gatekeeper ConstraintTemplates and Constraints: load, match and evaluate.

Templates and constraints are read from the **base** tree (``policy.paths`` in the config,
``policies/`` by default). Objects are evaluated the way Gatekeeper's admission review sees
them: ``input.review`` (``kind``, ``name``, ``namespace``, ``operation: CREATE``, ``object``)
and ``input.parameters`` from the constraint. ``spec.match`` honours ``kinds``, ``scope``,
``namespaces``, ``excludedNamespaces`` (with ``prefix*``/``*suffix`` globs), ``name``,
``labelSelector`` and ``namespaceSelector`` (labels of Namespace objects in the same batch or
inventory; an unknown namespace has no labels). ``enforcementAction`` maps ``deny`` to an
error, ``warn`` to a warning and ``dryrun`` to a notice.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import multiprocessing
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.domain.kinds import is_cluster_scoped
from bot.domain.model import Finding, RenderedObject, Severity
from bot.domain.policy.rego import CompiledTemplate, RegoError
from bot.domain.render import fastyaml
from bot.domain.yamlio import YamlError

log = logging.getLogger(__name__)

CONSTRAINT_GROUP = "constraints.gatekeeper.sh"
DEFAULT_POLICY_PATHS = ("policies",)
ACTION_SEVERITY = {"deny": Severity.ERROR, "warn": Severity.WARNING, "dryrun": Severity.NOTICE}


@dataclass(frozen=True, slots=True)
class Template:
    """A ConstraintTemplate: the constraint kind it defines and its Rego with ``libs``."""

    name: str
    kind: str
    rego: str
    libs: tuple[str, ...]
    path: str
    #: ``metadata.gatekeeper.sh/requires-sync-data``: (groups, versions, kinds) the inventory needs;
    #: ``None`` when the template does not say (then the whole inventory is given).
    sync: tuple[tuple[frozenset[str], frozenset[str], frozenset[str]], ...] | None = None

    def wants(self, obj: Mapping[str, Any]) -> bool:
        """Return whether ``obj`` belongs in this template's inventory."""
        if self.sync is None:
            return True
        group, version = _group_version(str(obj.get("apiVersion") or ""))
        kind = str(obj.get("kind") or "")
        return any(
            (group in g or "*" in g) and (version in v or "*" in v or not v) and (kind in k or "*" in k)
            for g, v, k in self.sync
        )


def _sync_requirements(
    doc: Mapping[str, Any],
) -> tuple[tuple[frozenset[str], frozenset[str], frozenset[str]], ...] | None:
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get("metadata.gatekeeper.sh/requires-sync-data")
    if not raw:
        return None
    try:
        text = str(raw).strip()
        if text.startswith('"') and text.endswith('"'):  # the library wraps the JSON in quotes, unescaped
            text = text[1:-1]
        data = json.loads(text)
    except (ValueError, TypeError):
        return None
    out = []
    for group in data if isinstance(data, list) else []:
        for req in group if isinstance(group, list) else [group]:
            if isinstance(req, dict):
                out.append(
                    (
                        frozenset(str(x) for x in req.get("groups") or [""]),
                        frozenset(str(x) for x in req.get("versions") or []),
                        frozenset(str(x) for x in req.get("kinds") or ["*"]),
                    )
                )
    return tuple(out) or None


@dataclass(frozen=True, slots=True)
class Constraint:
    """A constraint: an instance of a template's kind with ``match`` and ``parameters``."""

    kind: str
    name: str
    match: Mapping[str, Any]
    parameters: Mapping[str, Any]
    enforcement_action: str
    path: str

    @property
    def severity(self) -> Severity:
        return ACTION_SEVERITY.get(self.enforcement_action, Severity.ERROR)


@dataclass(slots=True)
class PolicySet:
    """Templates by constraint kind, the constraints, and problems found while loading."""

    templates: dict[str, Template] = field(default_factory=dict)
    constraints: list[Constraint] = field(default_factory=list)
    errors: list[Finding] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """One violation of one constraint by one object."""

    constraint_kind: str
    constraint_name: str
    enforcement_action: str
    severity: Severity
    message: str
    api_version: str
    kind: str
    namespace: str
    name: str
    source_path: str
    target: str = ""
    details: Any = None

    def to_finding(self, line: int = 1) -> Finding:
        """Return this result as a ``policy.gatekeeper`` finding on the object's source file."""
        where = f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"
        target = f" (target {self.target})" if self.target else ""
        return Finding(
            rule="policy.gatekeeper",
            severity=self.severity,
            path=self.source_path or "(rendered)",
            line=line,
            message=f"{self.constraint_kind}/{self.constraint_name} on {where}{target}: {self.message}",
            hint=(
                "The policy could not be evaluated, so it was not enforced here: fix it on the base "
                "branch. Nothing to change in this pull request for it."
                if self.enforcement_action == "error"
                else f"Change the object so that it satisfies constraint {self.constraint_name!r}"
                f" ({self.enforcement_action}); the policy itself lives on the base branch."
            ),
        )


# ---------------------------------------------------------------- loading


def template_from(doc: Mapping[str, Any], path: str) -> Template:
    """Build a :class:`Template` from a ConstraintTemplate document; raise ``ValueError`` if unusable."""
    spec = doc.get("spec") or {}
    kind = (((spec.get("crd") or {}).get("spec") or {}).get("names") or {}).get("kind")
    name = str((doc.get("metadata") or {}).get("name") or "")
    if not kind:
        raise ValueError("ConstraintTemplate has no spec.crd.spec.names.kind")
    for target in spec.get("targets") or []:
        if target.get("target") not in (None, "admission.k8s.gatekeeper.sh"):
            continue
        sync = _sync_requirements(doc)
        if target.get("rego"):
            return Template(name, str(kind), str(target["rego"]), tuple(target.get("libs") or ()), path, sync)
        for code in target.get("code") or []:
            if code.get("engine") == "Rego":
                source = code.get("source") or {}
                if source.get("rego"):
                    libs = tuple(source.get("libs") or target.get("libs") or ())
                    return Template(name, str(kind), str(source["rego"]), libs, path, sync)
    raise ValueError(f"ConstraintTemplate {name!r} has no Rego code for target admission.k8s.gatekeeper.sh")


def constraint_from(doc: Mapping[str, Any], path: str) -> Constraint:
    """Build a :class:`Constraint` from a constraint document."""
    spec = doc.get("spec") or {}
    return Constraint(
        kind=str(doc.get("kind") or ""),
        name=str((doc.get("metadata") or {}).get("name") or ""),
        match=dict(spec.get("match") or {}),
        parameters=dict(spec.get("parameters") or {}),
        enforcement_action=str(spec.get("enforcementAction") or "deny").lower(),
        path=path,
    )


def policy_paths(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the folders (relative to the repository root) that hold templates and constraints."""
    section = config.get("policy") or {}
    paths = section.get("paths")
    return tuple(paths) if paths else DEFAULT_POLICY_PATHS


def load_policy(tree: Path, config: Mapping[str, Any]) -> PolicySet:
    """Read every ConstraintTemplate and Constraint under the configured policy folders of ``tree``.

    Missing folders mean no policy; unreadable files and broken templates become findings
    in ``errors`` (the rest still loads). ``policy.enabled: false`` gives an empty set.
    """
    result = PolicySet()
    if (config.get("policy") or {}).get("enabled") is False:
        return result
    root = tree.resolve()
    for rel in policy_paths(config):
        base = (root / rel).resolve()
        if not base.is_relative_to(root) or not base.is_dir():
            continue
        for file in sorted(p for p in base.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
            if file.is_symlink() or not file.resolve().is_relative_to(root):
                continue
            relpath = file.relative_to(root).as_posix()
            if file.name in ("suite.yaml", "kustomization.yaml", "sync.yaml") or "/samples/" in f"/{relpath}":
                continue
            _load_file(result, file, relpath)
    return result


def _load_file(result: PolicySet, file: Path, relpath: str) -> None:
    # libyaml through fastyaml: the same limits and findings as yamlio (it falls back to yamlio on
    # anything unusual), at a fraction of the round-trip parser's cost on long Rego blocks.
    try:
        docs = fastyaml.load_docs(file.read_text(encoding="utf-8", errors="replace"), relpath)
    except YamlError as exc:
        result.errors.append(exc.finding)
        return
    for line, data in docs:
        if not isinstance(data, dict):
            continue
        api = str(data.get("apiVersion") or "")
        if data.get("kind") == "ConstraintTemplate" and api.startswith("templates.gatekeeper.sh/"):
            try:
                template = template_from(data, relpath)
            except ValueError as exc:
                result.errors.append(_policy_error(relpath, line, str(exc)))
                continue
            result.templates[template.kind] = template
        elif api.startswith(CONSTRAINT_GROUP + "/"):
            result.constraints.append(constraint_from(data, relpath))


def _policy_error(path: str, line: int, message: str) -> Finding:
    return Finding(
        "policy.load",
        Severity.WARNING,
        path,
        line,
        message,
        "Fix the policy on the base branch; until then this template is not enforced.",
    )


# ---------------------------------------------------------------- matching


def _group_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


def _glob(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern) if "*" in pattern else pattern == value


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if str(labels.get(key)) != str(value) or key not in labels:
            return False
    for expr in selector.get("matchExpressions") or []:
        key = expr.get("key")
        op = expr.get("operator")
        values = [str(v) for v in expr.get("values") or []]
        present = key in labels
        if op == "In" and not (present and str(labels[key]) in values):
            return False
        if op == "NotIn" and present and str(labels[key]) in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def matches(
    match: Mapping[str, Any], obj: Mapping[str, Any], namespaces: Mapping[str, Mapping[str, Any]]
) -> bool:
    """Return whether a constraint's ``spec.match`` selects ``obj``.

    ``namespaces`` maps namespace names to their Namespace objects (for
    ``namespaceSelector``). Cluster-scoped objects other than Namespaces are not filtered
    by the namespace criteria, as in Gatekeeper.
    """
    group, _ = _group_version(str(obj.get("apiVersion") or ""))
    kind = str(obj.get("kind") or "")
    meta = _metadata(obj)
    kinds = match.get("kinds")
    if kinds:
        ok = False
        for entry in kinds:
            groups = entry.get("apiGroups") or ["*"]
            names = entry.get("kinds") or ["*"]
            if ("*" in groups or group in groups) and ("*" in names or kind in names):
                ok = True
                break
        if not ok:
            return False
    is_namespace = kind == "Namespace" and group == ""
    namespace = str(meta.get("namespace") or "")
    scoped = bool(namespace) and not is_cluster_scoped(obj)
    scope = match.get("scope", "*")
    if (scope == "Cluster" and scoped) or (scope == "Namespaced" and not scoped):
        return False
    if match.get("name") and not _glob(str(match["name"]), str(meta.get("name") or "")):
        return False
    ns_name = str(meta.get("name") or "") if is_namespace else namespace
    if is_namespace or scoped:
        wanted = match.get("namespaces")
        if wanted and not any(_glob(str(p), ns_name) for p in wanted):
            return False
        if any(_glob(str(p), ns_name) for p in match.get("excludedNamespaces") or []):
            return False
        ns_selector = match.get("namespaceSelector")
        if ns_selector:
            ns_obj = obj if is_namespace else namespaces.get(ns_name, {})
            if not _selector_matches(ns_selector, _metadata(ns_obj).get("labels") or {}):
                return False
    label_selector = match.get("labelSelector")
    return not (label_selector and not _selector_matches(label_selector, meta.get("labels") or {}))


# ---------------------------------------------------------------- evaluation


def review_of(obj: Mapping[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    """Return Gatekeeper's ``input.review`` for an object (an admission request of ``operation``)."""
    group, version = _group_version(str(obj.get("apiVersion") or ""))
    meta = _metadata(obj)
    review: dict[str, Any] = {
        "kind": {"group": group, "version": version, "kind": str(obj.get("kind") or "")},
        "name": str(meta.get("name") or ""),
        "operation": operation,
        "object": dict(obj),
        "userInfo": {"username": "gitops-bot"},
    }
    if meta.get("namespace"):
        review["namespace"] = str(meta["namespace"])
    return review


def build_inventory(objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Return ``data.inventory`` for ``objects`` (namespaced and cluster-scoped trees)."""
    inventory: dict[str, Any] = {"namespace": {}, "cluster": {}}
    for obj in objects:
        meta = _metadata(obj)
        api = str(obj.get("apiVersion") or "")
        kind = str(obj.get("kind") or "")
        name = str(meta.get("name") or "")
        namespace = meta.get("namespace")
        if namespace and not is_cluster_scoped(obj):
            tree = inventory["namespace"].setdefault(str(namespace), {})
        else:
            tree = inventory["cluster"]
        tree.setdefault(api, {}).setdefault(kind, {})[name] = dict(obj)
    return inventory


def _as_plain(item: RenderedObject | Mapping[str, Any]) -> tuple[Mapping[str, Any], str, str]:
    if isinstance(item, RenderedObject):
        return item.obj, item.source_path, item.target
    return item, "", ""


Pair = tuple[Constraint, tuple[Mapping[str, Any], str, str]]
#: Below this many (constraint, object) pairs everything runs in this process: starting worker
#: processes (about 0.15 s) costs more than it saves.
PARALLEL_MIN_PAIRS = 2000
MAX_WORKERS = 8
#: Pairs per chunk when spreading over processes: small enough to balance a template that
#: dominates (K8sContainerLimits is half the work in bench/policy_bench.py), large enough that
#: compiling the template once per chunk stays negligible.
MIN_CHUNK = 250


@dataclass(frozen=True, slots=True)
class _Chunk:
    """One engine call, as plain data (it may be sent to a worker process)."""

    rego: str
    libs: tuple[str, ...]
    inventory: Mapping[str, Any]
    reviews: list[str]
    params: list[str]
    pairs: list[tuple[int, int]]


def _eval_chunk(chunk: _Chunk) -> list[list[dict[str, Any]] | RegoError]:
    """Compile the template and evaluate the chunk's pairs in one batched engine call."""
    try:
        compiled = CompiledTemplate(chunk.rego, chunk.libs, chunk.inventory)
    except RegoError as exc:
        return [exc] * len(chunk.pairs)
    return compiled.violations_batch(chunk.reviews, chunk.params, chunk.pairs)


def _prepare(
    template: Template, inventory: Mapping[str, Any], pairs: list[Pair], review_json: Mapping[int, str]
) -> tuple[_Chunk, list[int]]:
    """Build the engine call for ``pairs`` and, per pair, its slot in the call's results.

    ``review_json`` maps ``id(object)`` to its review as canonical JSON. Identical
    (review, parameters) pairs, e.g. one manifest rendered for many targets, are evaluated
    once; each review text is sent once however many constraints use it.
    """
    reviews: dict[str, int] = {}
    params: dict[str, int] = {}
    param_of: dict[int, int] = {}
    index: dict[tuple[int, int], int] = {}
    slots: list[int] = []
    for constraint, (obj, _, _) in pairs:
        r = reviews.setdefault(review_json[id(obj)], len(reviews))
        if id(constraint) not in param_of:
            text = json.dumps(dict(constraint.parameters), sort_keys=True)
            param_of[id(constraint)] = params.setdefault(text, len(params))
        slots.append(index.setdefault((r, param_of[id(constraint)]), len(index)))
    chunk = _Chunk(template.rego, tuple(template.libs), inventory, list(reviews), list(params), list(index))
    return chunk, slots


def _split(call: _Chunk, size: int) -> list[_Chunk]:
    """Cut an engine call into calls of at most ``size`` pairs, each carrying only its own texts.

    The answers of the pieces, concatenated in order, are the answers of the whole call.
    """
    if len(call.pairs) <= size:
        return [call]
    pieces = []
    for start in range(0, len(call.pairs), size):
        reviews: dict[int, int] = {}
        params: dict[int, int] = {}
        pairs = [
            (reviews.setdefault(r, len(reviews)), params.setdefault(p, len(params)))
            for r, p in call.pairs[start : start + size]
        ]
        pieces.append(
            _Chunk(
                call.rego,
                call.libs,
                call.inventory,
                [call.reviews[r] for r in reviews],
                [call.params[p] for p in params],
                pairs,
            )
        )
    return pieces


_POOLS: dict[int, ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ProcessPoolExecutor:
    """A long-lived pool of ``workers`` processes (started once, reused by every later call).

    ``forkserver`` rather than ``fork``: the bot's worker process has threads, and forking a
    threaded process can copy a held lock. The server preloads the Rego engine.
    """
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["bot.domain.policy.rego"])
            pool = _POOLS[workers] = ProcessPoolExecutor(workers, mp_context=context)
        return pool


def _forget_pool(workers: int) -> None:
    with _POOLS_LOCK:
        pool = _POOLS.pop(workers, None)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_chunks(chunks: list[_Chunk], workers: int) -> list[list[list[dict[str, Any]] | RegoError]]:
    """Evaluate every chunk, in worker processes when ``workers`` > 1; results in chunk order.

    The regorus binding holds the GIL while it evaluates, so threads do not help; processes
    do. If the pool cannot start or dies (a worker killed by the OOM killer, a sandbox
    without process support), the chunks run here instead: slower, same results.
    """
    if workers <= 1 or len(chunks) <= 1:
        return [_eval_chunk(c) for c in chunks]
    order = sorted(range(len(chunks)), key=lambda i: -len(chunks[i].pairs))  # biggest first
    try:
        pool = _pool(workers)
        futures = {i: pool.submit(_eval_chunk, chunks[i]) for i in order}
        return [futures[i].result() for i in range(len(chunks))]
    except (BrokenProcessPool, OSError, RuntimeError) as exc:
        log.warning("policy worker processes unavailable (%s); evaluating in this process", exc)
        _forget_pool(workers)
        return [_eval_chunk(c) for c in chunks]


def default_workers(pairs: int) -> int:
    """Processes to use for ``pairs`` (constraint, object) pairs: 1 when small, else the CPUs."""
    if pairs < PARALLEL_MIN_PAIRS:
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


def evaluate(
    policy_set: PolicySet,
    objects: Sequence[RenderedObject | Mapping[str, Any]],
    *,
    inventory: Sequence[Mapping[str, Any]] | None = None,
    workers: int | None = None,
) -> list[PolicyResult]:
    """Evaluate every constraint on every object it matches; return the violations.

    Each template is compiled once per chunk of (constraint, object) pairs, and each chunk is
    one batched engine call. With ``workers`` > 1 (default: one per CPU when there are at least
    :data:`PARALLEL_MIN_PAIRS` pairs, else 1) the pairs are cut into chunks spread over worker
    processes. ``inventory`` (default: the objects themselves) becomes ``data.inventory`` for
    referential templates only, filtered by their ``requires-sync-data`` annotation. A
    constraint whose template is missing, or a template that fails to compile or run,
    yields an error result instead of a crash. Results come in a deterministic order, the
    same whatever the number of workers.
    """
    plain = [_as_plain(o) for o in objects]
    inv_objects = list(inventory) if inventory is not None else [p[0] for p in plain]
    namespaces = {
        str(_metadata(o).get("name")): o
        for o in [*inv_objects, *(p[0] for p in plain)]
        if o.get("kind") == "Namespace"
    }
    by_kind: dict[str, list[Constraint]] = {}
    for constraint in policy_set.constraints:
        by_kind.setdefault(constraint.kind, []).append(constraint)
    results: list[PolicyResult] = []
    per_template: list[tuple[Template, Mapping[str, Any], list[Pair]]] = []
    for kind, constraints in sorted(by_kind.items()):
        template = policy_set.templates.get(kind)
        if template is None:
            for c in constraints:
                results.append(_error_result(c, f"no ConstraintTemplate defines kind {kind}", c.path))
            continue
        pairs: list[Pair] = []
        for c in constraints:
            try:
                pairs.extend((c, o) for o in plain if matches(c.match, o[0], namespaces))
            except (AttributeError, TypeError, ValueError):
                results.append(
                    _error_result(c, "spec.match is malformed (see Gatekeeper's match schema)", c.path)
                )
        if not pairs:
            continue
        inv = build_inventory(o for o in inv_objects if template.wants(o)) if _referential(template) else {}
        per_template.append((template, inv, pairs))
    total = sum(len(pairs) for _, _, pairs in per_template)
    count = default_workers(total) if workers is None else max(1, min(workers, MAX_WORKERS))
    size = max(MIN_CHUNK, -(-total // (count * 4))) if count > 1 else max(total, 1)
    review_json: dict[int, str] = {}
    for _, _, pairs in per_template:
        for _, (obj, _, _) in pairs:
            if id(obj) not in review_json:
                review_json[id(obj)] = json.dumps(review_of(obj), sort_keys=True)
    # One engine call per template, its identical pairs folded first; then cut into chunks for
    # the worker processes, so a pair shared by many targets is still evaluated once.
    prepared = [_prepare(template, inv, pairs, review_json) for template, inv, pairs in per_template]
    pieces = [(i, piece) for i, (call, _) in enumerate(prepared) for piece in _split(call, size)]
    answers: list[list[list[dict[str, Any]] | RegoError]] = [[] for _ in prepared]
    for (i, _), answer in zip(pieces, _run_chunks([piece for _, piece in pieces], count), strict=True):
        answers[i].extend(answer)
    outcomes = [
        [answer[slot] for slot in slots] for (_, slots), answer in zip(prepared, answers, strict=True)
    ]
    failed: set[tuple[str, str]] = set()
    for (template, _, chunk), outcome in zip(per_template, outcomes, strict=True):
        for (constraint, (obj, source, target)), violations in zip(chunk, outcome, strict=True):
            if isinstance(violations, RegoError):
                if (constraint.kind, constraint.name) not in failed:
                    failed.add((constraint.kind, constraint.name))
                    results.append(_error_result(constraint, str(violations), template.path))
                continue
            meta = _metadata(obj)
            for v in violations:
                results.append(
                    PolicyResult(
                        constraint_kind=constraint.kind,
                        constraint_name=constraint.name,
                        enforcement_action=constraint.enforcement_action,
                        severity=constraint.severity,
                        message=str(v.get("msg", "")),
                        api_version=str(obj.get("apiVersion") or ""),
                        kind=str(obj.get("kind") or ""),
                        namespace=str(meta.get("namespace") or ""),
                        name=str(meta.get("name") or ""),
                        source_path=source,
                        target=target,
                        details=v.get("details"),
                    )
                )
    return results


def _referential(template: Template) -> bool:
    return "data.inventory" in template.rego or any("data.inventory" in lib for lib in template.libs)


def _error_result(constraint: Constraint, message: str, path: str) -> PolicyResult:
    return PolicyResult(
        constraint_kind=constraint.kind,
        constraint_name=constraint.name,
        enforcement_action="error",
        # A policy that cannot be evaluated is the policy's problem, never the author's: warn.
        severity=Severity.WARNING,
        message=message,
        api_version="",
        kind=constraint.kind,
        namespace="",
        name=constraint.name,
        source_path=path,
    )
