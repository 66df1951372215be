"""Fault injection rules and the request log.

A :class:`FaultRule` matches a request by method and route (the OpenAPI path template such as
``/repos/{owner}/{repo}/check-runs``, an ``fnmatch`` pattern on it, or ``*``), or a webhook delivery
by event name when its kind is ``drop_webhook``. It fires with ``probability`` (drawn from a seeded
RNG, so a run is reproducible) at most ``times`` times (``None``: unlimited).
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("error", "secondary_rate_limit", "rate_limit_429", "slow", "drop_connection", "drop_webhook")


@dataclass
class FaultRule:
    kind: str
    route: str = "*"
    method: str = "*"
    probability: float = 1.0
    status: int = 502
    retry_after: int = 1
    delay: float = 1.0
    times: int | None = None
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")

    def matches(self, method: str, route: str) -> bool:
        """True when this rule applies to ``method route`` (or to a webhook event name)."""
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method != "*" and self.method.upper() != method.upper():
            return False
        return self.route == "*" or self.route == route or fnmatch.fnmatchcase(route, self.route)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Faults:
    """The active rules and the RNG that decides whether a matching rule fires."""

    seed: int = 0
    rules: list[FaultRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> FaultRule:
        """Activate a rule."""
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self, seed: int | None = None) -> None:
        """Remove every rule (and optionally reseed)."""
        with self._lock:
            self.rules.clear()
            if seed is not None:
                self.seed = seed
                self.rng = random.Random(seed)

    def pick(self, method: str, route: str, webhook: bool = False) -> FaultRule | None:
        """The rule that fires for this request or delivery, if any."""
        with self._lock:
            for rule in self.rules:
                if (rule.kind == "drop_webhook") != webhook:
                    continue
                if rule.matches(method, route) and self.rng.random() < rule.probability:
                    rule.fired += 1
                    return rule
        return None


@dataclass
class LoggedRequest:
    method: str
    route: str  # OpenAPI template, or the raw path when no operation matched
    path: str
    status: int
    actor: str | None
    fault: str | None = None


@dataclass
class RequestLog:
    """Every request the simulator answered, countable by ``"METHOD route"``."""

    entries: list[LoggedRequest] = field(default_factory=list)

    def add(self, entry: LoggedRequest) -> None:
        self.entries.append(entry)

    def counts(self) -> Counter[str]:
        """Requests per ``"METHOD /route/template"``."""
        return Counter(f"{e.method} {e.route}" for e in self.entries)

    def count(self, method: str | None = None, route: str | None = None) -> int:
        """How many requests matched (either filter may be omitted; route takes fnmatch patterns)."""
        return sum(
            1
            for e in self.entries
            if (method is None or e.method == method.upper())
            and (route is None or e.route == route or fnmatch.fnmatchcase(e.route, route))
        )

    def mark(self) -> int:
        """A position to count from later with :meth:`since`."""
        return len(self.entries)

    def since(self, mark: int) -> list[LoggedRequest]:
        return self.entries[mark:]

    def clear(self) -> None:
        self.entries.clear()
