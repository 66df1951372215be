"""The environment chain (dev -> staging -> prod) and promotion settings from the base config.

The config is already schema-validated (``config/sections/environments.schema.json`` and
``promotion.schema.json``); this module adds the rules a schema cannot say (unique names and
branches) and the defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

Strategy = Literal["cherry-pick", "merge"]

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class EnvironmentConfigError(ValueError):
    """The environments section makes no sense (duplicate names or branches, bad duration)."""


def parse_duration(text: str | int | None) -> timedelta:
    """Parse ``"30m"``, ``"1h30m"``, ``"2d"`` or seconds as int; None and ``""`` mean zero.

    Raises :class:`EnvironmentConfigError` for anything else (``"30 minutes"``, ``"-5m"``).
    """
    if text is None or text == "":
        return timedelta(0)
    if isinstance(text, int):
        if text < 0:
            raise EnvironmentConfigError(f"duration {text} is negative")
        return timedelta(seconds=text)
    s = text.strip().lower()
    parts = _DURATION.findall(s)
    if not parts or _DURATION.sub("", s).strip():
        raise EnvironmentConfigError(f"duration {text!r} is not like 30m, 1h30m, 2d or 90s")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


@dataclass(frozen=True, slots=True)
class KubernetesHealth:
    """Which Flux/Argo CD/Flagger objects prove an environment healthy, and where."""

    context: str
    kustomizations: tuple[str, ...] = ()  # "namespace/name" or "name" (flux-system)
    applications: tuple[str, ...] = ()  # "namespace/name" or "name" (argocd)
    canaries: tuple[str, ...] = ()  # "namespace/name"

    @property
    def empty(self) -> bool:
        return not (self.kustomizations or self.applications or self.canaries)


@dataclass(frozen=True, slots=True)
class Gates:
    """What must hold before a change leaves an environment (checked on the next env's PR)."""

    contexts: tuple[str, ...] = ()
    kubernetes: KubernetesHealth | None = None
    soak: timedelta = timedelta(0)
    approvals: tuple[str, ...] = ()
    freeze: tuple[dict[str, Any], ...] = ()

    @property
    def needs_health(self) -> bool:
        return bool(self.contexts) or (self.kubernetes is not None and not self.kubernetes.empty)


@dataclass(frozen=True, slots=True)
class Environment:
    """One environment: its branch, whether its promotion PRs merge themselves, its gates.

    ``gates.contexts``/``gates.kubernetes`` say how to tell that *this* environment is healthy
    and ``gates.soak`` how long a change must run healthy here before it moves on: they gate
    the promotion PR *out of* this environment. ``gates.approvals`` and ``gates.freeze`` gate
    the promotion PR *into* this environment. The same health settings drive
    ``rollback_on_red`` after a promotion into this environment merged.
    """

    name: str
    branch: str
    auto_merge: bool = False
    gates: Gates = field(default_factory=Gates)


@dataclass(frozen=True, slots=True)
class PromotionSettings:
    """The ``promotion`` section."""

    strategy: Strategy = "cherry-pick"
    rollback_on_red: bool = False
    merge_method: str = "merge"
    labels: tuple[str, ...] = ()
    reconcile_lookback: timedelta = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class Chain:
    """The ordered environments plus promotion settings."""

    environments: tuple[Environment, ...]
    settings: PromotionSettings = field(default_factory=PromotionSettings)

    def by_name(self, name: str) -> Environment | None:
        """Return the environment called ``name`` (case-insensitive), or None."""
        return next((e for e in self.environments if e.name.lower() == name.lower()), None)

    def by_branch(self, branch: str) -> Environment | None:
        """Return the environment whose branch is ``branch``, or None."""
        return next((e for e in self.environments if e.branch == branch), None)

    def next_after(self, env: Environment) -> Environment | None:
        """Return the environment after ``env``, or None for the last one."""
        idx = self.environments.index(env)
        return self.environments[idx + 1] if idx + 1 < len(self.environments) else None

    def previous(self, env: Environment) -> Environment | None:
        """Return the environment before ``env``, or None for the first one."""
        idx = self.environments.index(env)
        return self.environments[idx - 1] if idx > 0 else None

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.environments]


def _split(items: Any) -> tuple[str, ...]:
    return tuple(str(i) for i in (items or ()))


def load_chain(config: dict[str, Any]) -> Chain:
    """Build the chain from a parsed configuration (``environments`` and ``promotion``).

    No ``environments`` means an empty chain (promotion is off). Raises
    :class:`EnvironmentConfigError` for duplicate names or branches or a bad duration.
    """
    envs: list[Environment] = []
    seen_names: set[str] = set()
    seen_branches: set[str] = set()
    for raw in config.get("environments") or []:
        name = str(raw["name"])
        branch = str(raw.get("branch") or name)
        if name.lower() in seen_names:
            raise EnvironmentConfigError(f"environment {name!r} is listed twice")
        if branch in seen_branches:
            raise EnvironmentConfigError(f"branch {branch!r} is used by two environments")
        seen_names.add(name.lower())
        seen_branches.add(branch)
        g = raw.get("gates") or {}
        health = g.get("health") or {}
        kube = health.get("kubernetes")
        kh = None
        if kube:
            kh = KubernetesHealth(
                context=str(kube.get("context") or ""),
                kustomizations=_split(kube.get("kustomizations")),
                applications=_split(kube.get("applications")),
                canaries=_split(kube.get("canaries")),
            )
        gates = Gates(
            contexts=_split(health.get("contexts")),
            kubernetes=kh,
            soak=parse_duration(g.get("soak")),
            approvals=_split(g.get("approvals")),
            freeze=tuple(dict(f) for f in (g.get("freeze") or ())),
        )
        envs.append(Environment(name, branch, bool(raw.get("auto_merge", False)), gates))
    p = config.get("promotion") or {}
    settings = PromotionSettings(
        strategy="merge" if p.get("strategy") == "merge" else "cherry-pick",
        rollback_on_red=bool(p.get("rollback_on_red", False)),
        merge_method=str(p.get("merge_method", "merge")),
        labels=_split(p.get("labels")),
        reconcile_lookback=parse_duration(p.get("reconcile_lookback", "3d")),
    )
    return Chain(tuple(envs), settings)
