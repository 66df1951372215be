"""Freeze windows: date ranges or cron-like schedules with a duration, each in a timezone.

Two forms (``timezone`` defaults to UTC, ``reason`` is shown to people)::

    - {start: "2026-12-20", end: "2027-01-04", timezone: Europe/Berlin, reason: Holidays}
    - {schedule: "0 16 * * fri", duration: 64h, timezone: America/New_York, reason: Weekend}

A date-only ``end`` includes that whole day. A schedule is five cron fields (minute hour
day-of-month month day-of-week, with ``*``, ``a-b``, ``*/n``, lists and ``mon``/``jan`` names);
the window opens at each match and lasts ``duration`` (Argo CD sync-window style).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain.promotion.environments import EnvironmentConfigError, parse_duration

_DOW = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MON = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_MAX_SCAN = timedelta(days=35)


@dataclass(frozen=True, slots=True)
class ActiveFreeze:
    """A freeze window that covers ``now``: until when and why."""

    until: datetime
    reason: str


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise EnvironmentConfigError(f"unknown timezone {name!r} in a freeze window") from exc


def _parse_field(text: str, lo: int, hi: int, names: dict[str, int] | None = None) -> frozenset[int]:
    values: set[int] = set()
    for part in text.lower().split(","):
        step = 1
        if "/" in part:
            part, step_s = part.split("/", 1)
            step = int(step_s)
            if step < 1:
                raise ValueError("step must be positive")
        if part in ("*", ""):
            a, b = lo, hi
        elif "-" in part:
            x, y = part.split("-", 1)
            a, b = _value(x, names), _value(y, names)
        else:
            a = _value(part, names)
            b = hi if step > 1 else a
        if a < lo or b > hi or a > b:
            raise ValueError(f"{part} is outside {lo}-{hi}")
        values.update(range(a, b + 1, step))
    return frozenset(values)


def _value(text: str, names: dict[str, int] | None) -> int:
    if names and text[:3] in names:
        return names[text[:3]]
    return int(text)


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed five-field cron expression."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_any: bool
    weekdays_any: bool

    @classmethod
    def parse(cls, expr: str) -> Cron:
        """Parse ``expr``; raise :class:`EnvironmentConfigError` with the expression when invalid."""
        fields = expr.split()
        if len(fields) != 5:
            raise EnvironmentConfigError(f"schedule {expr!r} needs 5 fields: minute hour day month weekday")
        try:
            dow = _parse_field(fields[4], 0, 7, _DOW)
            return cls(
                minutes=_parse_field(fields[0], 0, 59),
                hours=_parse_field(fields[1], 0, 23),
                days=_parse_field(fields[2], 1, 31),
                months=_parse_field(fields[3], 1, 12, _MON),
                weekdays=frozenset(d % 7 for d in dow),
                days_any=fields[2] == "*",
                weekdays_any=fields[4] == "*",
            )
        except ValueError as exc:
            raise EnvironmentConfigError(f"schedule {expr!r} is not a valid cron expression: {exc}") from exc

    def matches(self, t: datetime) -> bool:
        """Whether the minute ``t`` (local time) matches."""
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_any or self.weekdays_any:
            return dom and dow
        return dom or dow  # cron: both restricted means either


def _as_local(value: Any, tz: ZoneInfo, end: bool) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        d = value
    else:
        text = str(value).strip()
        try:
            dt = datetime.fromisoformat(text)
        except ValueError as exc:
            raise EnvironmentConfigError(
                f"freeze date {text!r} is not ISO 8601 (2026-12-20 or 2026-12-20T18:00)"
            ) from exc
        if "T" in text or " " in text:
            return dt if dt.tzinfo else dt.replace(tzinfo=tz)
        d = dt.date()
    start = datetime.combine(d, time(0), tzinfo=tz)
    return start + timedelta(days=1) if end else start


def active_freeze(
    windows: tuple[dict[str, Any], ...] | list[dict[str, Any]], now: datetime
) -> ActiveFreeze | None:
    """Return the freeze covering ``now`` that ends last, or None when none does.

    ``now`` must be timezone-aware. Raises :class:`EnvironmentConfigError` for a window that
    cannot be read (the caller shows it as a failed gate rather than ignoring the freeze).
    """
    found: list[ActiveFreeze] = []
    for w in windows:
        tz = _zone(w.get("timezone"))
        reason = str(w.get("reason") or "freeze window")
        if "schedule" in w:
            cron = Cron.parse(str(w["schedule"]))
            duration = parse_duration(w.get("duration") or "1h")
            if duration > _MAX_SCAN:
                raise EnvironmentConfigError(f"freeze duration {w.get('duration')!r} is longer than 35 days")
            local = now.astimezone(tz).replace(second=0, microsecond=0)
            t = local
            while t > local - duration:
                if cron.matches(t):
                    found.append(ActiveFreeze((t + duration).astimezone(UTC), reason))
                    break
                t -= timedelta(minutes=1)
        elif "start" in w or "end" in w:
            start = _as_local(w.get("start", "1970-01-01"), tz, end=False)
            end = _as_local(w.get("end", "9999-12-30"), tz, end=True)
            if start <= now < end:
                found.append(ActiveFreeze(end.astimezone(UTC), reason))
        else:
            raise EnvironmentConfigError("a freeze window needs start/end or schedule/duration")
    return max(found, key=lambda f: f.until) if found else None
