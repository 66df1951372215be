"""Read the fleet facts of one environment branch from a local git repository.

For the branch tip: the configuration, the targets discovery finds (each attributed to a
cluster), the cluster requests (version, region), every target rendered (through the render
cache, so a push that touches one cluster re-renders that cluster's targets only), Gatekeeper
on each cluster's rendered objects, Secrets with data in Git, and EKS add-ons. Targets that
cannot be rendered are listed on their cluster (skipped content is shown, never a pass).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.domain.config import CONFIG_PATH, ConfigError, parse_config
from bot.domain.fleet import Addon, ClusterFacts, EnvFacts, SecretFinding, Violation
from bot.domain.model import RenderedObject
from bot.domain.policy import evaluate, gatekeeper, load_policy
from bot.domain.promotion.environments import Chain, load_chain
from bot.domain.render.discovery import discover
from bot.domain.upgrades.tables import ADDON_VERSIONS
from bot.domain.validate import fleet as fleet_rules
from bot.domain.validate.base import TreeReader, iter_yaml_files, parse_docs
from bot.domain.validate.eks import format_minor, parse_minor
from bot.git.files import GIT_ENV, GitError, read_file_at, rev_parse
from bot.git.mirror import materialise_many
from bot.render_runtime.cache import RenderCache
from bot.render_runtime.engine import render_target

_REQUEST_HINT = re.compile(r"^\s*(?:-\s*)?kind:\s*['\"]?(\w+)", re.MULTILINE)
_ADDON_GROUPS = ("eks.aws.crossplane.io", "eks.services.k8s.aws")


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


def _requests(tree: Path, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return cluster name -> {region, version, env, source} from the cluster requests in ``tree``."""
    mappings = fleet_rules.kind_mappings(config)
    words = {str(k.get("kind")) for k in mappings if k.get("kind")}
    kinds = hashlib.sha256(
        json.dumps(
            [mappings, config.get("fleet"), config.get("cluster_requests")], sort_keys=True, default=str
        ).encode()
    ).hexdigest()
    reader = TreeReader(tree)
    out: dict[str, dict[str, Any]] = {}
    for rel in iter_yaml_files(tree):
        if not fleet_rules.in_scope(rel, config):
            continue
        text = reader.read(rel)
        if not text or not words & set(_REQUEST_HINT.findall(text)):
            continue
        for name, facts in _requests_in_file(rel, text, config, kinds):
            out.setdefault(name, facts)
    return out


def _addons(objects: Sequence[dict[str, Any]], version: str | None) -> list[Addon]:
    """Return the EKS add-ons among ``objects``, with AWS's latest version for ``version`` when listed."""
    minor = parse_minor(version) if version else None
    latest = {name: by.get(format_minor(minor)) for name, by in ADDON_VERSIONS.items()} if minor else {}
    out: list[Addon] = []
    for obj in objects:
        api = str(obj.get("apiVersion", ""))
        if obj.get("kind") != "Addon" or api.split("/")[0] not in _ADDON_GROUPS:
            continue
        spec = obj.get("spec") or {}
        fp = spec.get("forProvider", spec) if isinstance(spec, dict) else {}
        name, version = fp.get("addonName") or spec.get("name"), fp.get("addonVersion")
        if name and version:
            out.append(Addon(str(name), str(version), latest.get(str(name))))
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
    requests = _requests(tree, config)
    registry = {str(c.get("name")): c for c in config.get("clusters") or [] if isinstance(c, dict)}
    disc = discover(tree, config, secret_key=secret_key)
    targets = [t for t in disc.targets if t.cluster and t.cluster != "-"]  # "-": not attributed
    env_of: dict[str, str] = {}
    for name, req in requests.items():
        env_of[name] = req["env"]
    for name, c in registry.items():
        env_of.setdefault(name, str(c.get("env") or ""))
    for t in targets:
        env_of.setdefault(t.cluster, t.env)
    mine = {n for n, e in env_of.items() if e == env}
    if not mine:
        mine = set(env_of)
    policy = load_policy(tree, config)
    by_cluster: dict[str, list[RenderedObject]] = defaultdict(list)
    skipped: dict[str, list[str]] = defaultdict(list)
    apps: dict[str, int] = defaultdict(int)
    for t in targets:
        if t.cluster not in mine or disc.scanner is None:
            continue
        apps[t.cluster] += 1
        objs, findings = render_target(tree, t, disc.scanner, secret_key=secret_key, cache=cache)
        if any(f.blocking for f in findings) and not objs:
            skipped[t.cluster].append(t.name)
        by_cluster[t.cluster].extend(RenderedObject(t.name, t.cluster, t.env, t.path, o) for o in objs)
    cluster_of = {t.name: t.cluster for t in targets}
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
    out: list[ClusterFacts] = []
    for name in sorted(mine):
        objects = by_cluster.get(name, [])
        req = requests.get(name, {})
        reg = registry.get(name, {})
        out.append(
            ClusterFacts(
                repo=repo,
                branch=branch,
                env=env_of.get(name) or env,
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
        )
    return out


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


def collect_branch(
    git_dir: Path,
    repo: str,
    branch: str,
    *,
    secret_key: bytes,
    cache: RenderCache | None = None,
    config: dict[str, Any] | None = None,
) -> tuple[list[ClusterFacts], EnvFacts]:
    """Return the cluster facts and environment facts of ``branch`` of the repository at ``git_dir``.

    Configuration is read at ``config`` when given (the service passes the default branch's),
    else at the branch tip.
    """
    sha = rev_parse(git_dir, f"refs/heads/{branch}")
    config = config if config is not None else read_config(git_dir, sha)
    chain = chain_of(config)
    env = chain.by_branch(branch) if chain else None
    env_name = env.name if env else branch.rsplit("/", 1)[-1]
    nxt = chain.next_after(env) if chain and env else None
    dropped: list[str] = []
    with materialise_many(git_dir, [(sha, dropped)]) as (tree,):
        clusters = collect_tree(
            tree, config, repo=repo, branch=branch, env=env_name, secret_key=secret_key, cache=cache
        )
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
