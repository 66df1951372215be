"""Read the fleet facts of one environment branch from a local git repository.

For the branch tip: the configuration, the targets discovery finds (each attributed to a
cluster), the cluster requests (version, region), every target rendered (through the render
cache, so a push that touches one cluster re-renders that cluster's targets only), Gatekeeper
on each cluster's rendered objects, Secrets with data in Git, and EKS add-ons. Targets that
cannot be rendered are listed on their cluster (skipped content is shown, never a pass).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import subprocess
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.domain.config import CONFIG_PATH, ConfigError, parse_config
from bot.domain.fleet import Addon, ClusterFacts, EnvFacts, SecretFinding, Violation
from bot.domain.model import RenderedObject
from bot.domain.policy import evaluate, gatekeeper, load_policy
from bot.domain.policy.gatekeeper import PolicySet, policy_paths
from bot.domain.promotion.environments import Chain, load_chain
from bot.domain.render.discovery import discover, discovery_reads, is_yaml
from bot.domain.render.kustomize import KustomizationScanner
from bot.domain.render.result import Target
from bot.domain.upgrades.tables import ADDON_VERSIONS
from bot.domain.validate import fleet as fleet_rules
from bot.domain.validate.base import TreeReader, iter_yaml_files, parse_docs
from bot.domain.validate.eks import format_minor, parse_minor
from bot.domain.validate.fleet import eks_addon
from bot.git.files import GIT_ENV, GitError, git, read_file_at, rev_parse
from bot.git.mirror import materialise_many
from bot.render_runtime.cache import RenderCache
from bot.render_runtime.engine import _Inputs, render_target, target_inputs

_REQUEST_HINT = re.compile(r"^\s*(?:-\s*)?kind:\s*['\"]?(\w+)", re.MULTILINE)


def read_config(git_dir: Path, sha: str) -> dict[str, Any]:
    """Return the configuration at ``sha`` (``{"version": 1}`` when absent or broken)."""
    try:
        return parse_config(read_file_at(git_dir, sha, CONFIG_PATH))
    except (ConfigError, GitError):
        return {"version": 1}


def chain_of(config: dict[str, Any]) -> Chain | None:
    """Return the promotion chain of ``config``, or None when it has none."""
    try:
        chain = load_chain(config)
    except ValueError:
        return None
    return chain if chain.environments else None


#: (file, its text's digest, the request-kind mappings' digest) -> the cluster requests in it.
#: Parsing YAML is most of a branch's cost once renders are cached; a push changes few files.
_REQUESTS_MEMO: dict[tuple[str, str, str], list[tuple[str, dict[str, Any]]]] = {}
_MEMO_LIMIT = 200_000


def _requests_in_file(
    rel: str, text: str, config: dict[str, Any], kinds: str
) -> list[tuple[str, dict[str, Any]]]:
    key = (rel, hashlib.sha256(text.encode()).hexdigest(), kinds)
    found = _REQUESTS_MEMO.get(key)
    if found is not None:
        return found
    docs, _ = parse_docs(text, rel)
    found = []
    for req in fleet_rules.requests_in(docs, config):
        if req.role != "cluster" or not req.name:
            continue
        version = req.value("version")
        found.append(
            (
                req.name,
                {
                    "region": str(req.value("region") or ""),
                    "version": None if version is None else str(version),
                    "env": req.environment or "",
                    "source": rel,
                },
            )
        )
    if len(_REQUESTS_MEMO) >= _MEMO_LIMIT:
        _REQUESTS_MEMO.clear()
    _REQUESTS_MEMO[key] = found
    return found


def _kinds_digest(config: dict[str, Any]) -> tuple[set[str], str]:
    mappings = fleet_rules.kind_mappings(config)
    words = {str(k.get("kind")) for k in mappings if k.get("kind")}
    kinds = hashlib.sha256(
        json.dumps(
            [mappings, config.get("fleet"), config.get("cluster_requests")], sort_keys=True, default=str
        ).encode()
    ).hexdigest()
    return words, kinds


def _request_files(
    tree: Path, config: dict[str, Any], files: Sequence[str]
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Return file -> the cluster requests in it, for the in-scope ``files`` of ``tree`` that have some."""
    words, kinds = _kinds_digest(config)
    reader = TreeReader(tree)
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for rel in files:
        if not fleet_rules.in_scope(rel, config):
            continue
        text = reader.read(rel)
        if not text or not words & set(_REQUEST_HINT.findall(text)):
            continue
        found = _requests_in_file(rel, text, config, kinds)
        if found:
            out[rel] = found
    return out


def _merge_requests(
    order: Sequence[str], by_file: dict[str, list[tuple[str, dict[str, Any]]]]
) -> dict[str, dict[str, Any]]:
    """Return cluster name -> {region, version, env, source}; the first file (in ``order``) wins."""
    out: dict[str, dict[str, Any]] = {}
    for rel in order:
        for name, facts in by_file.get(rel, ()):
            out.setdefault(name, facts)
    return out


def _requests(tree: Path, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return cluster name -> {region, version, env, source} from the cluster requests in ``tree``."""
    order = list(iter_yaml_files(tree))
    return _merge_requests(order, _request_files(tree, config, order))


def _addons(objects: Sequence[dict[str, Any]], version: str | None) -> list[Addon]:
    """Return the EKS add-ons among ``objects``, with AWS's latest version for ``version`` when listed."""
    minor = parse_minor(version) if version else None
    latest = {name: by.get(format_minor(minor)) for name, by in ADDON_VERSIONS.items()} if minor else {}
    out: list[Addon] = []
    for obj in objects:
        addon = eks_addon(str(obj.get("apiVersion", "")).rpartition("/")[0], str(obj.get("kind", "")), obj)
        if addon is not None:
            out.append(Addon(addon.name, addon.version, latest.get(addon.name)))
    return out


def _secrets(objects: Sequence[RenderedObject]) -> list[SecretFinding]:
    out: list[SecretFinding] = []
    for o in objects:
        if o.obj.get("kind") != "Secret" or str(o.obj.get("apiVersion")) != "v1":
            continue
        keys = sorted({*(o.obj.get("data") or {}), *(o.obj.get("stringData") or {})})
        if keys:
            meta = o.obj.get("metadata") or {}
            out.append(
                SecretFinding(
                    "secrets.plaintext",
                    o.source_path,
                    1,
                    f"Secret {meta.get('namespace') or 'default'}/{meta.get('name')} carries data in Git "
                    f"(keys: {', '.join(map(str, keys))})",
                )
            )
    return out


@dataclass(slots=True)
class BranchMemo:
    """What one collection of a branch learnt, so that the next push recomputes only what it touched.

    ``targets`` and ``inputs`` (the files each target reads) stand while a push changes nothing
    discovery reads (:func:`bot.domain.render.discovery.discovery_reads`); ``request_files``
    holds the cluster requests per file of ``order`` (every YAML file, in reading order);
    ``clusters`` the facts of each cluster, reused when none of its inputs changed.
    """

    sha: str
    key: str
    targets: list[Target]
    inputs: dict[str, _Inputs]
    reads_other_files: bool
    git_files: tuple[str, ...] | None
    order: list[str]
    request_files: dict[str, list[tuple[str, dict[str, Any]]]]
    policy: PolicySet
    clusters: dict[str, ClusterFacts] = field(default_factory=dict)


def collect_tree(
    tree: Path,
    config: dict[str, Any],
    *,
    repo: str,
    branch: str,
    env: str,
    secret_key: bytes,
    cache: RenderCache | None = None,
) -> list[ClusterFacts]:
    """Return the facts of every cluster ``tree`` deploys in environment ``env``.

    Clusters come from discovery (``Target.cluster``), the cluster requests and the
    configuration's ``clusters:`` registry; when some are attributed to ``env``, only those
    are kept (an environment branch holding the whole fleet shows its own clusters).
    """
    memo = _collect(tree, config, repo=repo, branch=branch, env=env, secret_key=secret_key, cache=cache)
    return [memo.clusters[n] for n in sorted(memo.clusters)]


def _collect(
    tree: Path,
    config: dict[str, Any],
    *,
    repo: str,
    branch: str,
    env: str,
    secret_key: bytes,
    cache: RenderCache | None,
    sha: str = "",
    key: str = "",
    before: BranchMemo | None = None,
    changed: set[str] | None = None,
) -> BranchMemo:
    """Collect ``tree``; with ``before`` (the memo of an earlier commit whose discovery stands for
    this one) and ``changed`` (every path that differs), only the clusters whose inputs changed."""
    redo: set[str] | None = None  # None: every cluster
    if before is None or changed is None:
        order = list(iter_yaml_files(tree))
        disc = discover(tree, config, secret_key=secret_key)
        memo = BranchMemo(
            sha,
            key,
            disc.targets,
            {},
            disc.reads_other_files,
            disc.git_files,
            order,
            _request_files(tree, config, order),
            load_policy(tree, config),
        )
        scanner = disc.scanner
    else:
        scanner = KustomizationScanner(tree, has_links=False)
        fresh = _request_files(tree, config, [rel for rel in before.order if rel in changed])
        files = {rel: found for rel, found in before.request_files.items() if rel not in changed} | fresh
        policy_dirs = [p.strip("/") + "/" for p in policy_paths(config)]
        policy_changed = any(rel.startswith(d) for rel in changed for d in policy_dirs)
        memo = BranchMemo(
            sha,
            key,
            before.targets,
            dict(before.inputs),
            before.reads_other_files,
            before.git_files,
            before.order,
            files,
            load_policy(tree, config) if policy_changed else before.policy,
        )
        if not policy_changed:
            redo = {
                name
                for rel in changed
                for name, _ in [*before.request_files.get(rel, ()), *fresh.get(rel, ())]
            }
            redo |= {
                t.cluster
                for t in before.targets
                if (i := before.inputs.get(t.name)) is None or i.touched_by(changed)
            }
    requests = _merge_requests(memo.order, memo.request_files)
    registry = {str(c.get("name")): c for c in config.get("clusters") or [] if isinstance(c, dict)}
    targets = [t for t in memo.targets if t.cluster and t.cluster != "-"]  # "-": not attributed
    env_of: dict[str, str] = {}
    for name, req in requests.items():  # a request that names no environment takes the registry's
        if req["env"]:
            env_of[name] = req["env"]
    for name, c in registry.items():
        if c.get("env"):
            env_of.setdefault(name, str(c["env"]))
    for t in targets:
        env_of.setdefault(t.cluster, t.env)
    for name in [*requests, *registry]:
        env_of.setdefault(name, "")
    mine = {n for n, e in env_of.items() if e == env}
    if not mine:
        mine = set(env_of)
    kept = before.clusters if before is not None and redo is not None else {}
    todo = {n for n in mine if n not in kept or (redo is not None and n in redo)}
    memo.clusters = {n: kept[n] for n in mine - todo}
    by_cluster: dict[str, list[RenderedObject]] = defaultdict(list)
    skipped: dict[str, list[str]] = defaultdict(list)
    apps: dict[str, int] = defaultdict(int)
    for t in targets:
        if t.cluster not in todo or scanner is None:
            continue
        apps[t.cluster] += 1
        inputs = memo.inputs[t.name] = target_inputs(tree, t, scanner)
        objs, findings = render_target(tree, t, scanner, secret_key=secret_key, cache=cache, inputs=inputs)
        if any(f.blocking for f in findings) and not objs:
            skipped[t.cluster].append(t.name)
        by_cluster[t.cluster].extend(RenderedObject(t.name, t.cluster, t.env, t.path, o) for o in objs)
    violations = _violations(memo.policy, by_cluster, {t.name: t.cluster for t in targets})
    for name in sorted(todo):
        objects = by_cluster.get(name, [])
        req = requests.get(name, {})
        reg = registry.get(name, {})
        memo.clusters[name] = ClusterFacts(
            repo=repo,
            branch=branch,
            env=env_of[name] if env_of.get(name) not in (None, "", "-") else env,  # "-": not attributed
            cluster=name,
            region=str(req.get("region") or reg.get("region") or ""),
            version=req.get("version"),
            source=str(req.get("source") or reg.get("path") or ""),
            apps=apps.get(name, 0),
            addons=tuple(_addons([o.obj for o in objects], req.get("version"))),
            violations=tuple(violations.get(name, ())),
            secrets=tuple(_secrets(objects)),
            skipped=tuple(skipped.get(name, ())),
        )
    return memo


def _violations(
    policy: PolicySet, by_cluster: dict[str, list[RenderedObject]], cluster_of: dict[str, str]
) -> dict[str, list[Violation]]:
    """Gatekeeper on each cluster's objects, by cluster."""
    # One evaluation over every cluster's objects (each template compiles once), unless a
    # template reads data.inventory: then each cluster is its own inventory.
    if any(gatekeeper._referential(t) for t in policy.templates.values()):
        batches = list(by_cluster.values())
    else:
        batches = [[o for objs in by_cluster.values() for o in objs]]
    # one process: a worker pool costs more than it saves for a branch on a busy 2-CPU host
    results = [r for b in batches if policy.constraints and b for r in evaluate(policy, b, workers=1)]
    violations: dict[str, list[Violation]] = defaultdict(list)
    for r in results:
        violations[cluster_of.get(r.target, "")].append(
            Violation(
                f"{r.constraint_kind}/{r.constraint_name}",
                r.severity.value,
                r.kind,
                r.namespace,
                r.name,
                r.message,
                r.source_path,
                r.api_version,
            )
        )
    return violations


def pending_commits(git_dir: Path, branch: str, next_branch: str) -> int:
    """Return how many non-merge commits of ``branch`` have no equivalent patch in ``next_branch``.

    A promotion cherry-picks or merges; either way the change is in ``next_branch`` afterwards.
    """
    proc = subprocess.run(
        [
            "git",
            "--git-dir",
            str(git_dir),
            "rev-list",
            "--count",
            "--no-merges",
            "--cherry-pick",
            "--right-only",
            f"refs/heads/{next_branch}...refs/heads/{branch}",
        ],
        capture_output=True,
        env=GIT_ENV,
        check=False,
    )
    if proc.returncode != 0:
        return 0
    return int(proc.stdout.decode().strip() or 0)


#: (git dir, repository, branch) -> the memo of its last collection, in this process.
_MEMOS: OrderedDict[tuple[str, str, str], BranchMemo] = OrderedDict()
_MEMOS_LIMIT = 64
_MEMOS_LOCK = threading.Lock()
_BRANCH_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_REGULAR = {"100644", "100755"}


def _changed_paths(git_dir: Path, old: str, new: str) -> tuple[set[str], bool]:
    """Return the paths that differ between commits ``old`` and ``new``, and whether discovery
    finds the same targets in both (only regular files modified, none that discovery reads)."""
    raw = git(git_dir, "diff", "--raw", "-z", "--no-renames", "--no-abbrev", old, new, "--")
    parts = raw.decode("utf-8", errors="surrogateescape").split("\0")
    changed: set[str] = set()
    same = True
    blobs: list[tuple[str, str, str]] = []
    for meta, rel in zip(parts[0::2], parts[1::2], strict=False):
        fields_ = meta.lstrip(":").split()
        if len(fields_) < 5:
            continue
        changed.add(rel)
        mode_a, mode_b, sha_a, sha_b, status = fields_[:5]
        if status != "M" or mode_a not in _REGULAR or mode_b not in _REGULAR:
            same = False
        elif is_yaml(rel):
            blobs.append((rel, sha_a, sha_b))
        elif discovery_reads(rel, ()):
            same = False
    if same and blobs:
        texts = _blob_texts(git_dir, [b for _, a, c in blobs for b in (a, c)])
        same = not any(discovery_reads(rel, (texts.get(a, ""), texts.get(b, ""))) for rel, a, b in blobs)
    return changed, same


def _blob_texts(git_dir: Path, shas: Sequence[str]) -> dict[str, str]:
    """Return blob sha -> its text (one ``git cat-file --batch``)."""
    out = git(git_dir, "cat-file", "--batch", input="".join(f"{s}\n" for s in shas).encode())
    texts: dict[str, str] = {}
    pos = 0
    for sha in shas:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] == b"missing":
            continue
        size = int(header[2])
        texts[sha] = out[pos : pos + size].decode("utf-8", errors="replace")
        pos += size + 1
    return texts


def _generators_unchanged(memo: BranchMemo, changed: set[str]) -> bool:
    """Whether no ApplicationSet git generator reads a changed file (fnmatch: ``*`` also spans
    folders, so a doubtful path counts as read)."""
    if not memo.reads_other_files:
        return True
    if memo.git_files is None:
        return False
    return not any(fnmatch.fnmatchcase(rel, glob) for rel in changed for glob in memo.git_files)


def _memo_key(config: dict[str, Any], env: str, secret_key: bytes) -> str:
    body = json.dumps([config, env], sort_keys=True, default=str).encode()
    return hashlib.sha256(body + hashlib.sha256(secret_key).digest()).hexdigest()


def collect_branch(
    git_dir: Path,
    repo: str,
    branch: str,
    *,
    secret_key: bytes,
    cache: RenderCache | None = None,
    config: dict[str, Any] | None = None,
    incremental: bool = True,
) -> tuple[list[ClusterFacts], EnvFacts]:
    """Return the cluster facts and environment facts of ``branch`` of the repository at ``git_dir``.

    Configuration is read at ``config`` when given (the service passes the default branch's),
    else at the branch tip. With ``incremental`` (the default), the last collection of this
    branch in this process is reused when its configuration is the same and the commits between
    change nothing discovery reads: only the clusters whose inputs (rendered files, cluster
    requests) changed are collected again, every cluster when a policy file changed. The
    result equals a full collection (``incremental=False``).
    """
    sha = rev_parse(git_dir, f"refs/heads/{branch}")
    config = config if config is not None else read_config(git_dir, sha)
    chain = chain_of(config)
    env = chain.by_branch(branch) if chain else None
    env_name = env.name if env else branch.rsplit("/", 1)[-1]
    nxt = chain.next_after(env) if chain and env else None
    ident = (str(git_dir), repo, branch)
    key = _memo_key(config, env_name, secret_key)
    with _MEMOS_LOCK:
        branch_lock = _BRANCH_LOCKS.setdefault(ident, threading.Lock())
    with branch_lock:  # one collection of a branch at a time: the second reuses the first
        with _MEMOS_LOCK:
            before = _MEMOS.get(ident) if incremental else None
        if before is not None and before.key != key:
            before = None
        changed: set[str] | None = None
        if before is not None and before.sha != sha:
            try:
                changed, same = _changed_paths(git_dir, before.sha, sha)
            except GitError:  # the earlier commit is gone (a force push and a gc): start afresh
                changed, same = None, False
            if not same or not _generators_unchanged(before, changed or set()):
                before, changed = None, None
        if before is not None and before.sha == sha:
            memo = before
        else:
            dropped: list[str] = []
            with materialise_many(git_dir, [(sha, dropped)]) as (tree,):
                memo = _collect(
                    tree,
                    config,
                    repo=repo,
                    branch=branch,
                    env=env_name,
                    secret_key=secret_key,
                    cache=cache,
                    sha=sha,
                    key=key,
                    before=before,
                    changed=changed,
                )
        if incremental:
            with _MEMOS_LOCK:
                _MEMOS[ident] = memo
                _MEMOS.move_to_end(ident)
                while len(_MEMOS) > _MEMOS_LIMIT:
                    _MEMOS.popitem(last=False)
    clusters = [memo.clusters[n] for n in sorted(memo.clusters)]
    pending = pending_commits(git_dir, branch, nxt.branch) if nxt else 0
    return clusters, EnvFacts(
        repo=repo,
        env=env_name,
        branch=branch,
        head=sha,
        next_env=nxt.name if nxt else "",
        pending_commits=pending,
        freeze=env.gates.freeze if env else (),
    )


def environment_branches(git_dir: Path, config: dict[str, Any]) -> list[str]:
    """Return the environment branches of ``config`` that exist in ``git_dir``."""
    chain = chain_of(config)
    out: list[str] = []
    for e in chain.environments if chain else ():
        try:
            rev_parse(git_dir, f"refs/heads/{e.branch}")
        except GitError:
            continue
        out.append(e.branch)
    return out
