"""patternedRecurrence: validation to Graph's full shape, and expansion in the series' zone.

Expansion works on wall-clock dates in the recurrence time zone and localises each occurrence
with zoneinfo, so a 09:00 weekly meeting stays at 09:00 local across DST changes. Like Outlook,
an absolute day beyond the month's length (31st, Feb 29th) falls on the month's last day.
"""

from __future__ import annotations

import calendar as cal
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from msgraph_emulator.mailbox.errors import MailboxError, body_read
from msgraph_emulator.mailbox.timezones import resolve_zone

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
INDEXES = {"first": 0, "second": 1, "third": 2, "fourth": 3, "last": -1}
PATTERNS = (
    "daily",
    "weekly",
    "absoluteMonthly",
    "relativeMonthly",
    "absoluteYearly",
    "relativeYearly",
)
RANGES = ("endDate", "noEnd", "numbered")
NO_DATE = "0001-01-01"


def _invalid(message: str) -> MailboxError:
    return MailboxError(400, "ErrorInvalidRequest", f"Recurrence is invalid: {message}")


def _enum(value: Any, allowed: tuple[str, ...] | dict[str, int]) -> str:
    """Enum members are read case-insensitively (Microsoft's own samples send "Monday")."""
    for name in allowed:
        if isinstance(value, str) and value.casefold() == name.casefold():
            return name
    raise body_read(f"Requested value '{value}' was not found.")


def _date(value: Any, name: str) -> str:
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError as exc:
        raise _invalid(f"{name} must be a date (yyyy-MM-dd).") from exc


def normalize(raw: Any, default_zone: str) -> dict[str, Any]:
    """Validate a client's patternedRecurrence and fill every field Graph returns."""
    if not isinstance(raw, dict) or not isinstance(raw.get("pattern"), dict):
        raise _invalid("pattern is required.")
    p, r = raw["pattern"], raw.get("range")
    if not isinstance(r, dict):
        raise _invalid("range is required.")
    kind = _enum(p.get("type"), PATTERNS)
    days = [_enum(d, DAYS) for d in p.get("daysOfWeek") or []]
    pattern: dict[str, Any] = {
        "type": kind,
        "interval": int(p.get("interval") or 1),
        "month": int(p.get("month") or 0),
        "dayOfMonth": int(p.get("dayOfMonth") or 0),
        "daysOfWeek": days,
        "firstDayOfWeek": _enum(p.get("firstDayOfWeek") or "sunday", DAYS),
        "index": _enum(p.get("index") or "first", INDEXES),
    }
    if pattern["interval"] < 1:
        raise _invalid("interval must be at least 1.")
    if kind in ("weekly", "relativeMonthly", "relativeYearly") and not days:
        raise _invalid(f"daysOfWeek is required for a {kind} pattern.")
    if kind in ("absoluteMonthly", "absoluteYearly") and not 1 <= pattern["dayOfMonth"] <= 31:
        raise _invalid(f"dayOfMonth is required for a {kind} pattern.")
    if kind.endswith("Yearly") and not 1 <= pattern["month"] <= 12:
        raise _invalid(f"month is required for a {kind} pattern.")
    rkind = _enum(r.get("type"), RANGES)
    zone = str(r.get("recurrenceTimeZone") or default_zone)
    resolve_zone(zone)
    rng: dict[str, Any] = {
        "type": rkind,
        "startDate": _date(r.get("startDate"), "startDate"),
        "endDate": _date(r.get("endDate"), "endDate") if rkind == "endDate" else NO_DATE,
        "recurrenceTimeZone": zone,
        "numberOfOccurrences": int(r.get("numberOfOccurrences") or 0) if rkind == "numbered" else 0,
    }
    if rkind == "endDate" and rng["endDate"] < rng["startDate"]:
        raise _invalid("endDate is before startDate.")
    if rkind == "numbered" and rng["numberOfOccurrences"] < 1:
        raise _invalid("numberOfOccurrences must be at least 1.")
    return {"pattern": pattern, "range": rng}


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    total = year * 12 + (month - 1) + n
    return total // 12, total % 12 + 1


def _clamped(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, cal.monthrange(year, month)[1]))


def _relative(year: int, month: int, days: set[int], index: int) -> date | None:
    last = cal.monthrange(year, month)[1]
    matches = [
        date(year, month, d) for d in range(1, last + 1) if date(year, month, d).weekday() in days
    ]
    if index >= len(matches):
        return None
    return matches[index]


def _dates(pattern: dict[str, Any], start: date) -> Iterator[date]:
    kind, step = pattern["type"], pattern["interval"]
    days = {DAYS.index(d) for d in pattern["daysOfWeek"]}
    index = INDEXES[pattern["index"]]
    if kind == "daily":
        d = start
        while True:
            yield d
            d += timedelta(days=step)
    elif kind == "weekly":
        wkst = DAYS.index(pattern["firstDayOfWeek"])
        week = start - timedelta(days=(start.weekday() - wkst) % 7)
        offsets = sorted((d - wkst) % 7 for d in days)
        while True:
            for off in offsets:
                d = week + timedelta(days=off)
                if d >= start:
                    yield d
            week += timedelta(weeks=step)
    elif kind.endswith("Monthly"):
        y, m = start.year, start.month
        while True:
            if kind == "absoluteMonthly":
                hit: date | None = _clamped(y, m, pattern["dayOfMonth"])
            else:
                hit = _relative(y, m, days, index)
            if hit is not None and hit >= start:
                yield hit
            y, m = _add_months(y, m, step)
    else:
        y = start.year
        while True:
            if kind == "absoluteYearly":
                hit = _clamped(y, pattern["month"], pattern["dayOfMonth"])
            else:
                hit = _relative(y, pattern["month"], days, index)
            if hit is not None and hit >= start:
                yield hit
            y += step


def occurrences(
    recurrence: dict[str, Any], start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """Every occurrence ``(start, end)`` of a series, in order, as aware series-zone datetimes.

    ``start``/``end`` are the master's; their wall-clock time of day and duration are kept.
    """
    rng = recurrence["range"]
    zone = resolve_zone(rng["recurrenceTimeZone"])
    local_start = start.astimezone(zone).replace(tzinfo=None)
    duration = end.astimezone(zone).replace(tzinfo=None) - local_start
    until = date.fromisoformat(rng["endDate"]) if rng["type"] == "endDate" else None
    remaining = rng["numberOfOccurrences"] if rng["type"] == "numbered" else -1
    for d in _dates(recurrence["pattern"], date.fromisoformat(rng["startDate"])):
        if (until is not None and d > until) or remaining == 0:
            return
        remaining -= 1
        wall = datetime.combine(d, local_start.time())
        yield wall.replace(tzinfo=zone), (wall + duration).replace(tzinfo=zone)
