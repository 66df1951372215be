"""Result types of rendering: targets, the diff of a base..head range and its blast radius."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.domain.dangers import Danger
from bot.domain.model import Finding, ObjectChange, RenderedObject


@dataclass(frozen=True, slots=True)
class Target:
    """One thing that is rendered and deployed to one cluster: a kustomization root, a Flux
    Kustomization, an Argo CD Application (also from an ApplicationSet), or the objects an
    ApplicationSet generates.

    ``kind`` is ``kustomize``, ``flux``, ``argocd`` or ``objects`` (``objects_yaml`` holds
    them). ``variables`` are Flux ``postBuild`` variables, already masked when they come
    from a Secret; ``var_sources`` are the files they were read from. ``include`` and
    ``exclude`` are Argo CD ``directory`` globs (``{a,b}`` alternatives allowed). ``helm`` is an Argo CD
    Helm source resolved against this repository (:class:`bot.domain.render.helm.ArgoHelm` as JSON;
    ``path`` is then the chart folder). Two targets compare equal when they render the same way
    (the defining line is ignored). ``blind`` and ``blind_inputs``: see below.
    """

    name: str
    kind: str
    path: str
    cluster: str
    env: str
    source: str
    line: int = field(default=1, compare=False)
    namespace: str = ""
    variables: tuple[tuple[str, str], ...] = ()
    var_sources: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    recurse: bool = True
    objects_yaml: str = ""
    include: str = ""
    exclude: str = ""
    options: str = ""
    """Kustomize options of the Flux Kustomization or Argo CD source (JSON, see render.overlay)."""
    helm: str = ""
    blind: str = ""
    """Why the bot cannot render (all of) what this target deploys, e.g. its source is another
    repository: a change that reaches it gets a notice naming the target (never a silent
    "no changes")."""
    blind_inputs: tuple[str, ...] = ()
    """Files of this repository the target reads but the bot does not render (``$values`` files)."""


@dataclass(frozen=True, slots=True)
class BlastRow:
    """How much one cluster in one environment changes."""

    env: str
    cluster: str
    targets: int
    added: int
    changed: int
    removed: int

    @property
    def total(self) -> int:
        return self.added + self.changed + self.removed


@dataclass(slots=True)
class TargetStatus:
    """What happened to one target in this diff (for the summary and for failures)."""

    target: str
    cluster: str
    env: str
    state: str  # "rendered" | "skipped" | "failed" | "added" | "removed"
    objects_base: int = 0
    objects_head: int = 0


@dataclass(slots=True)
class DiffResult:
    """The rendered diff of a base..head range over every target of the repository."""

    changes: list[ObjectChange] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    rendered_head: list[RenderedObject] = field(default_factory=list)
    targets_rendered: int = 0
    targets_total: int = 0
    statuses: list[TargetStatus] = field(default_factory=list)
    dangers: list[Danger] = field(default_factory=list)

    @property
    def blast_radius(self) -> list[BlastRow]:
        """Per (env, cluster): changed targets and object counts, sorted by env then cluster."""
        counts: dict[tuple[str, str], list[int]] = {}
        targets: dict[tuple[str, str], set[str]] = {}
        index = {"added": 0, "changed": 1, "removed": 2}
        for c in self.changes:
            key = (c.env, c.cluster)
            counts.setdefault(key, [0, 0, 0])[index[c.action]] += 1
            targets.setdefault(key, set()).add(c.target)
        return [
            BlastRow(env, cluster, len(targets[(env, cluster)]), *counts[(env, cluster)])
            for env, cluster in sorted(counts)
        ]
