"""EKS Kubernetes versions: the support calendar and the version rules (pure).

Offline default: :data:`BUNDLED_CALENDAR`, transcribed from AWS's documentation page
"Amazon EKS Kubernetes release calendar" (Amazon EKS User Guide, "Understand the Kubernetes
version lifecycle on EKS", https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html),
as published in 2026 (1.35 was then the newest version). A minor version has 14 months of
standard support after its EKS release and 12 more months of extended support.

Online, :func:`bot.aws.eks.online_catalog` builds the same :class:`EksCatalog` from
``eks.describe_cluster_versions``. Versions newer than the newest entry are "unknown", which
is a notice, not an error: the table may simply be older than AWS's newest release.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$")


@dataclass(frozen=True, slots=True)
class EksVersion:
    """One Kubernetes minor version on EKS with its support dates."""

    version: str
    release: date | None
    end_of_standard: date
    end_of_extended: date


#: (version, EKS release, end of standard support, end of extended support)
BUNDLED_CALENDAR: tuple[EksVersion, ...] = tuple(
    EksVersion(v, date.fromisoformat(r) if r else None, date.fromisoformat(s), date.fromisoformat(e))
    for v, r, s, e in (
        ("1.35", "2026-01-27", "2027-03-27", "2028-03-27"),
        ("1.34", "2025-10-02", "2026-12-02", "2027-12-02"),
        ("1.33", "2025-05-29", "2026-07-29", "2027-07-29"),
        ("1.32", "2025-01-23", "2026-03-23", "2027-03-23"),
        ("1.31", "2024-09-26", "2025-11-26", "2026-11-26"),
        ("1.30", "2024-05-23", "2025-07-23", "2026-07-23"),
        ("1.29", "2024-01-23", "2025-03-23", "2026-03-23"),
        ("1.28", "2023-09-26", "2024-11-26", "2025-11-26"),
        ("1.27", "2023-05-24", "2024-07-24", "2025-07-24"),
        ("1.26", "2023-04-11", "2024-06-11", "2025-06-11"),
        ("1.25", "2023-02-22", "2024-05-01", "2025-05-01"),
        ("1.24", "2022-11-15", "2024-01-31", "2025-01-31"),
        ("1.23", "2022-08-11", "2023-10-11", "2024-10-11"),
    )
)


def parse_minor(value: object) -> tuple[int, int] | None:
    """Return ``(major, minor)`` of a version such as ``1.29``, ``"v1.29.3"``; ``None`` if unparsable.

    A YAML float such as ``1.3`` is read as written, so ``1.30`` must be quoted in YAML
    (``1.30`` unquoted is the float 1.3): the caller reports that separately.
    """
    if isinstance(value, bool) or value is None:
        return None
    match = _VERSION.match(str(value).strip())
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def format_minor(v: tuple[int, int]) -> str:
    """Return ``"1.29"`` for ``(1, 29)``."""
    return f"{v[0]}.{v[1]}"


@dataclass(frozen=True, slots=True)
class Support:
    """Where a version stands on a given day."""

    status: str  # "standard" | "extended" | "unsupported" | "unknown"
    entry: EksVersion | None


class EksCatalog:
    """The EKS versions and their dates; look up a version's support status on a day."""

    def __init__(
        self,
        versions: Iterable[EksVersion],
        *,
        source: str = "bundled",
        addons: Mapping[tuple[str, str], frozenset[str]] | None = None,
    ) -> None:
        self.versions = {v.version: v for v in versions}
        self.source = source
        #: (add-on name, Kubernetes minor) -> compatible add-on versions; empty when offline.
        self.addons: dict[tuple[str, str], frozenset[str]] = dict(addons or {})

    @classmethod
    def bundled(cls) -> EksCatalog:
        """Return the catalog from :data:`BUNDLED_CALENDAR`."""
        return cls(BUNDLED_CALENDAR, source="bundled calendar")

    def newest(self) -> str | None:
        """Return the newest version in the catalog."""
        keys = [k for k in self.versions if parse_minor(k)]
        return max(keys, key=lambda k: parse_minor(k) or (0, 0)) if keys else None

    def supported_standard(self, today: date) -> list[str]:
        """Return the versions in standard support on ``today``, newest first."""
        ok = [v.version for v in self.versions.values() if today <= v.end_of_standard]
        return sorted(ok, key=lambda k: parse_minor(k) or (0, 0), reverse=True)

    def support(self, version: tuple[int, int], today: date) -> Support:
        """Return the support status of ``version`` on ``today``."""
        entry = self.versions.get(format_minor(version))
        if entry is None:
            newest = self.newest()
            if newest and version > (parse_minor(newest) or (0, 0)):
                return Support("unknown", None)
            return Support("unsupported", None)
        if today <= entry.end_of_standard:
            return Support("standard", entry)
        if today <= entry.end_of_extended:
            return Support("extended", entry)
        return Support("unsupported", entry)
