"""Shared value types of the domain: findings, object changes and the report.

Every checker (render/diff, validation, policy, governance) speaks these types, so the
bot, ``gitops-bot check`` and the tests share one vocabulary.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal


class Severity(enum.StrEnum):
    """How bad a finding is. Only ``error`` blocks a pull request."""

    ERROR = "error"
    WARNING = "warning"
    NOTICE = "notice"

    @property
    def annotation_level(self) -> str:
        """The matching check-run annotation level (``failure``, ``warning``, ``notice``)."""
        return {"error": "failure", "warning": "warning", "notice": "notice"}[self.value]

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "notice": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem pinned to a file and line, with a hint that says what to do.

    ``rule`` is a stable dotted name (``yaml.syntax``, ``schema``, ``fleet.region``,
    ``secrets.plaintext``, ``signature``, ...). ``line`` and ``column`` are 1-based;
    ``line`` is 1 when a problem has no better place.
    """

    rule: str
    severity: Severity
    path: str
    line: int
    message: str
    hint: str = ""
    column: int | None = None
    end_line: int | None = None

    @property
    def blocking(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path, self.line, self.severity.rank, self.rule, self.message)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


Action = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class ObjectChange:
    """One Kubernetes object that a pull request adds, removes or changes on one target."""

    target: str
    cluster: str
    env: str
    api_version: str
    kind: str
    namespace: str
    name: str
    action: Action
    diff: str

    def sort_key(self) -> tuple[str, str, str, str, str, str]:
        return (self.env, self.cluster, self.target, self.kind, self.namespace, self.name)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "cluster": self.cluster,
            "env": self.env,
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "action": self.action,
            "diff": self.diff,
        }


@dataclass(slots=True)
class Report:
    """Everything ``gitops-bot check`` and the bot say about one base..head range."""

    changes: list[ObjectChange] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        return any(f.blocking for f in self.findings)

    def extend(self, findings: Iterable[Finding]) -> None:
        self.findings.extend(findings)

    def sorted(self) -> Report:
        return Report(
            changes=sorted(self.changes, key=ObjectChange.sort_key),
            findings=sorted(set(self.findings), key=Finding.sort_key),
        )

    def to_json(self) -> dict[str, Any]:
        ordered = self.sorted()
        return {
            "changes": [c.to_json() for c in ordered.changes],
            "findings": [f.to_json() for f in ordered.findings],
            "blocking": self.blocking,
        }


@dataclass(frozen=True, slots=True)
class RenderedObject:
    """One Kubernetes object rendered for one target (cluster and environment)."""

    target: str
    cluster: str
    env: str
    source_path: str
    obj: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CheckInput:
    """What every checker gets: both trees, the base config and what the PR changed.

    ``config`` always comes from the base revision. ``rendered_head`` holds the objects
    rendered at head for the targets the change touches (Gatekeeper runs on them).
    ``git_dir``/``base_sha``/``head_sha`` are set when commit-level checks (signatures)
    can run.
    """

    base_dir: Path
    head_dir: Path
    config: dict[str, Any]
    changed_paths: tuple[str, ...] = ()
    rendered_head: tuple[RenderedObject, ...] = ()
    git_dir: Path | None = None
    base_sha: str | None = None
    head_sha: str | None = None
