"""The ``gitops-bot check`` pipeline: the same checks the bot runs, on a local clone.

:func:`build_check` materialises the base and head revisions of a local repository
(normal clone, worktree or bare), reads ``.github/gitops-bot.yml`` from the **base**
revision, computes the changed paths and the rendered diff, then runs every checker in
:data:`CHECKERS`. Checkers are plain callables ``CheckInput -> Iterable[Finding]``; one
that raises becomes an error finding, it never stops the others.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from bot.aws import eks as eks_aws
from bot.domain.config import CONFIG_PATH, ConfigError, parse_config
from bot.domain.dangers import Danger, file_dangers
from bot.domain.diff import MAX_PARTS, diff_comment_parts
from bot.domain.masking import Masker
from bot.domain.model import CheckInput, Finding, Report, Severity
from bot.domain.render import DiffResult
from bot.domain.render.fastyaml import load_docs
from bot.domain.validate import Decision, self_service_decision, validate
from bot.domain.validate.base import YAML_SUFFIXES, TreeReader
from bot.domain.validate.eks import EksCatalog
from bot.domain.validate.fleet import eks_addon
from bot.domain.yamlio import YamlError
from bot.git.files import GIT_ENV, GitError, changed_paths, git, read_file_at, rev_parse
from bot.git.mirror import materialise_many
from bot.git.signatures import signature_checker
from bot.render_runtime.cache import RenderCache
from bot.render_runtime.engine import compute_diff

Checker = Callable[[CheckInput], Iterable[Finding]]

CHECKERS: list[Checker] = [validate, signature_checker]
"""Every checker ``gitops-bot check`` and the bot run after rendering: validation and policy
(:func:`bot.domain.validate.validate`) and commit signatures with ``trust: keys``
(:func:`bot.git.signatures.signature_checker`)."""

PR_CHECKERS: list[Checker] = [validate]
"""What the bot's validate check runs on a pull request or a merge group: commit signatures are
the ``gitops-bot/signatures`` check's alone there (it follows ``trust``, GitHub's verification
and the commits the bot recorded making), so they are not judged twice with different facts."""


class UsageError(ValueError):
    """The repository or a revision cannot be used (exit code 2)."""


@dataclass(slots=True)
class CheckResult:
    """A report plus what built it: the diff (for the comment) and the resolved revisions."""

    report: Report
    diff: DiffResult
    base_sha: str
    head_sha: str
    changed_paths: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    self_service: Decision | None = None
    masker: Masker = field(default_factory=lambda: Masker(os.urandom(32)))

    def comment_parts(self) -> list[str]:
        """Return the diff comment for this report, with every finding (not only rendering ones).

        ``render.comment.max_parts`` of the base configuration bounds the number of parts.
        """
        shown = replace(self.diff, findings=sorted(set(self.report.findings), key=Finding.sort_key))
        max_parts = int(
            ((self.config.get("render") or {}).get("comment") or {}).get("max_parts") or MAX_PARTS
        )
        parts = diff_comment_parts(shown, base_sha=self.base_sha, head_sha=self.head_sha, max_parts=max_parts)
        return [self.masker.text(part) for part in parts]

    def to_json(self) -> dict[str, Any]:
        """Return what ``gitops-bot check --format json`` prints, masked."""
        data = self.report.to_json()
        data["base"] = self.base_sha
        data["head"] = self.head_sha
        data["targets"] = {"rendered": self.diff.targets_rendered, "total": self.diff.targets_total}
        data["dangers"] = [d.to_json() for d in self.diff.dangers]
        masked: dict[str, Any] = self.masker.value(data)
        return masked


def resolve_git_dir(repo: Path) -> Path:
    """Return the git directory of a clone, a worktree or a bare repository."""
    repo = Path(repo)
    if not repo.is_dir():
        raise UsageError(f"{repo} is not a directory")
    proc = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--absolute-git-dir"],
        capture_output=True,
        env=GIT_ENV,
        check=False,
    )
    if proc.returncode != 0:
        raise UsageError(f"{repo} is not a git repository")
    return Path(proc.stdout.decode().strip())


def _secret_key() -> bytes:
    configured = os.environ.get("GITOPS_BOT_DIFF_KEY")
    return configured.encode() if configured else os.urandom(32)


def _run_checker(checker: Checker, data: CheckInput) -> list[Finding]:
    name = getattr(checker, "__qualname__", repr(checker))
    try:
        return list(checker(data))
    except Exception as exc:  # a broken checker must not hide the others
        return [
            Finding(
                "internal",
                Severity.ERROR,
                CONFIG_PATH,
                1,
                f"checker {name} failed: {type(exc).__name__}: {exc}",
                "This is a bug in gitops-bot; please report it with this message.",
            )
        ]


def learn_secrets(masker: Masker, trees: Sequence[Path], paths: Sequence[str]) -> None:
    """Teach ``masker`` the Secret values in the changed YAML files of both trees (any nesting)."""
    for tree in trees:
        reader = TreeReader(tree)
        for rel in paths:
            text = reader.read(rel) if rel.endswith(YAML_SUFFIXES) else None
            if not text or "Secret" not in text:
                continue
            try:
                docs = load_docs(text, rel)
            except YamlError:
                continue  # unreadable YAML is a finding; there are no values to learn
            masker.learn_documents(data for _line, data in docs)


def mask_result(masker: Masker, diff: DiffResult, findings: Iterable[Finding]) -> tuple[DiffResult, Report]:
    """Return the diff and the report with every text masked: the pass every output goes through."""
    changes = [masker.change(c) for c in diff.changes]
    diff = replace(diff, changes=changes, findings=[masker.finding(f) for f in diff.findings])
    masked = {masker.finding(f) for f in findings}
    return diff, Report(changes=list(changes), findings=sorted(masked, key=Finding.sort_key))


def build_check(
    repo_dir_or_git_dir: Path,
    base: str,
    head: str,
    *,
    checkers: Sequence[Checker] | None = None,
    secret_key: bytes | None = None,
    cache: RenderCache | None = None,
) -> CheckResult:
    """Run the render diff and every checker for ``base..head`` of a local repository.

    The diff compares the merge base of ``base`` and ``head`` with ``head`` (what the
    pull request introduces); configuration is read at ``base``. Raises
    :class:`UsageError` when the repository or a revision cannot be resolved.
    The head tree is not discovered again when :func:`compute_diff` can prove it finds
    what the base has. Both trees are written at the same time.
    """
    git_dir = resolve_git_dir(repo_dir_or_git_dir)
    try:
        base_sha = rev_parse(git_dir, base)
        head_sha = rev_parse(git_dir, head)
    except GitError as exc:
        raise UsageError(f"unknown revision: {exc}") from exc
    try:
        merge_base = git(git_dir, "merge-base", base_sha, head_sha).decode().strip()
    except GitError as exc:
        raise UsageError(f"{base} and {head} have no common history") from exc
    findings: list[Finding] = []
    try:
        config = parse_config(read_file_at(git_dir, base_sha, CONFIG_PATH))
    except ConfigError as exc:
        findings.extend(exc.findings)
        config = {"version": 1}
    paths = changed_paths(git_dir, base_sha, head_sha)
    key = secret_key if secret_key is not None else _secret_key()
    dropped: list[str] = []
    masker = Masker(key)
    with materialise_many(git_dir, [(merge_base, []), (head_sha, dropped)]) as (base_dir, head_dir):
        learn_secrets(masker, (base_dir, head_dir), paths)
        diff = compute_diff(
            base_dir,
            head_dir,
            config,
            changed_paths=paths,
            cache=cache,
            secret_key=key,
        )
        findings.extend(diff.findings)
        diff.dangers.extend(unrendered_dangers(base_dir, head_dir, paths, diff.dangers))
        diff.dangers.sort(key=Danger.sort_key)
        findings.extend(
            Finding(
                "render.symlink",
                Severity.WARNING,
                name,
                1,
                "symbolic link pointing outside the repository was dropped before rendering",
                "Replace the link by the file it points to; links out of the repository are never followed.",
            )
            for name in dropped
        )
        data = CheckInput(
            base_dir=base_dir,
            head_dir=head_dir,
            config=config,
            changed_paths=tuple(paths),
            rendered_head=tuple(diff.rendered_head),
            git_dir=git_dir,
            base_sha=base_sha,
            head_sha=head_sha,
        )
        chosen = list(CHECKERS if checkers is None else checkers)
        if validate in chosen and (aws := eks_aws.session_for(config)) is not None:
            eks = eks_catalog(aws, config, head_dir, paths)  # eks.online: AWS's calendar and add-ons
            chosen = [partial(validate, eks=eks) if c is validate else c for c in chosen]
        for checker in chosen:
            findings.extend(_run_checker(checker, data))
        decision = self_service_decision(data, findings)
    diff, report = mask_result(masker, diff, findings)
    return CheckResult(report, diff, base_sha, head_sha, paths, config, decision, masker)


def eks_catalog(aws: Any, config: dict[str, Any], head_dir: Path, paths: Sequence[str]) -> EksCatalog:
    """With ``eks.online``: AWS's EKS calendar, and the versions AWS offers of the EKS add-ons the
    change touches, for every version AWS still supports (each pair cached with the calendar)."""
    catalog = eks_aws.catalog_for(config, aws)
    reader = TreeReader(head_dir)
    names = set()
    for rel in paths:
        if not rel.endswith(YAML_SUFFIXES):
            continue
        for obj in _objects(reader, rel):
            group = str(obj.get("apiVersion", "")).rpartition("/")[0]
            addon = eks_addon(group, str(obj.get("kind", "")), obj)
            if addon is not None:
                names.add(addon.name)
    if names:
        today = date.today()
        alive = sorted(v.version for v in catalog.versions.values() if today <= v.end_of_extended)
        eks_aws.catalog_with_addons(aws, catalog, alive, names)
    return catalog


def _objects(reader: TreeReader, rel: str) -> list[dict[str, Any]]:
    text = reader.read(rel)
    return [d for _line, d in load_docs(text, rel) if isinstance(d, dict)] if text else []


def unrendered_dangers(
    base_dir: Path, head_dir: Path, paths: Sequence[str], found: Sequence[Danger]
) -> list[Danger]:
    """Cluster requests removed or replaced in changed files, judged as written (see :func:`file_dangers`)."""
    out: list[Danger] = []
    base, head = TreeReader(base_dir), TreeReader(head_dir)
    for rel in paths:
        if not rel.endswith(YAML_SUFFIXES):
            continue
        try:
            base_objs, head_objs = (_objects(reader, rel) for reader in (base, head))
        except YamlError:
            continue  # its syntax finding blocks the PR and says why
        out.extend(file_dangers(rel, base_objs, head_objs, [*found, *out]))
    return out


def build_report(
    repo_dir_or_git_dir: Path,
    base: str,
    head: str,
    *,
    checkers: Sequence[Checker] | None = None,
    secret_key: bytes | None = None,
    cache: RenderCache | None = None,
) -> Report:
    """Return the :class:`Report` of :func:`build_check` (what ``gitops-bot check`` prints)."""
    return build_check(
        repo_dir_or_git_dir, base, head, checkers=checkers, secret_key=secret_key, cache=cache
    ).report
