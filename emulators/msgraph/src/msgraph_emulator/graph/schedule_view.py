"""Pure parts of getSchedule: time zones, ``dateTimeTimeZone`` values, the availability view."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

from msgraph_emulator.notify.mailbox_view import BusyInstance

DIGITS = {"free": "0", "tentative": "1", "busy": "2", "oof": "3", "workingelsewhere": "4"}
#: When several items overlap a slot the strongest wins (Exchange's merged free/busy).
STRENGTH = {"free": 0, "tentative": 1, "workingelsewhere": 2, "busy": 3, "oof": 4}
STATUS_NAMES = {
    "free": "free",
    "tentative": "tentative",
    "busy": "busy",
    "oof": "oof",
    "workingelsewhere": "workingElsewhere",
}


def zone(name: str) -> tzinfo:
    """A Windows (``Pacific Standard Time``) or IANA zone name; ValueError if unknown."""
    if name.strip().upper() in {"UTC", "Z", "GMT", "COORDINATED UNIVERSAL TIME"}:
        return UTC
    iana = win_tz.get(name, name)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def parse_dttz(value: object) -> datetime:
    """``{"dateTime": "2019-03-15T09:00:00", "timeZone": "..."}`` → aware UTC datetime."""
    if not isinstance(value, dict):
        raise TypeError("expected a dateTimeTimeZone object")
    raw, tz_name = value.get("dateTime"), value.get("timeZone") or "UTC"
    if not isinstance(raw, str) or not isinstance(tz_name, str):
        raise TypeError("dateTime and timeZone must be strings")
    text = raw.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    local = datetime.fromisoformat(text)
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone(tz_name))
    return local.astimezone(UTC)


def format_dttz(value: datetime, tz_name: str) -> dict[str, str]:
    local = value.astimezone(zone(tz_name)).replace(tzinfo=None)
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.") + "0000000", "timeZone": tz_name}


def status_key(show_as: str) -> str:
    key = show_as.casefold()
    return key if key in STRENGTH else "busy"


def availability_view(
    items: Sequence[BusyInstance], start: datetime, end: datetime, interval_min: int
) -> str:
    step = timedelta(minutes=interval_min)
    slots = math.ceil((end - start) / step)
    view: list[str] = []
    for n in range(slots):
        lo, hi = start + n * step, min(start + (n + 1) * step, end)
        best = "free"
        for item in items:
            key = status_key(item.show_as)
            if item.start < hi and item.end > lo and STRENGTH[key] > STRENGTH[best]:
                best = key
        view.append(DIGITS[best])
    return "".join(view)
