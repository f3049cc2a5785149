"""Time zones as Microsoft Graph names them, and its ``dateTimeTimeZone`` values as UTC instants.

Graph names zones by their Windows name ("Pacific Standard Time") or by an IANA name
("Europe/Bucharest"), in event times and in ``mailboxSettings.timeZone`` alike; Windows names map
to IANA through CLDR's table (``tzlocal.windows_tz``). A name that maps to no zone is an
:class:`UnknownTimeZone`, never a silent UTC guess: a wrong zone would move busy time by hours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

_UTC = ZoneInfo("UTC")
#: Spellings of UTC that are in neither table (Exchange's own, and the CLDR display name).
_UTC_NAMES = frozenset({"utc", "etc/utc", "coordinated universal time", "tzone://microsoft/utc"})
_WINDOWS_BY_FOLDED_NAME = {name.casefold(): iana for name, iana in win_tz.items()}
_FRACTION = re.compile(r"\.(\d+)")


class UnknownTimeZone(ValueError):
    """A zone name that is neither a known Windows name nor an IANA name."""

    def __init__(self, name: str, item_id: str | None = None) -> None:
        where = f" in Graph item {item_id!r}" if item_id is not None else ""
        super().__init__(f"unknown time zone {name!r}{where} (neither a Windows nor an IANA name)")
        self.name = name
        self.item_id = item_id


@lru_cache(maxsize=512)
def _lookup(name: str) -> ZoneInfo | None:
    folded = name.casefold()
    iana = win_tz.get(name) or _WINDOWS_BY_FOLDED_NAME.get(folded)
    if iana is None and folded in _UTC_NAMES:
        return _UTC
    iana = iana or name
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: not a valid key ("../x", "")
        return None


def resolve_zone(name: str) -> ZoneInfo:
    """The zone a Graph zone name means: a Windows name, an IANA name or a spelling of UTC."""
    zone = _lookup(name.strip())
    if zone is None:
        raise UnknownTimeZone(name)
    return zone


def try_resolve_zone(name: object) -> ZoneInfo | None:
    """:func:`resolve_zone`, or None for a missing or unknown name (for optional hints only)."""
    if not isinstance(name, str) or not name.strip():
        return None
    return _lookup(name.strip())


def mailbox_zone(name: str | None) -> ZoneInfo:
    """The zone of a mailbox's ``timeZone`` setting; a mailbox without one is on UTC."""
    if name is None or not name.strip():
        return _UTC
    return resolve_zone(name)


def parse_wall_clock(value: str) -> datetime:
    """``2017-08-29T04:00:00.0000000`` as a datetime (naive unless the text has an offset).

    Graph writes seven fractional digits; datetime keeps six, so the 100 ns digit is dropped.
    """
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], value.strip(), count=1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def instant_of(value: Mapping[str, Any]) -> datetime:
    """A ``dateTimeTimeZone`` (``{"dateTime", "timeZone"}``) as an aware UTC datetime.

    The wall-clock time is read in ``timeZone`` (UTC when Graph omits it, its default); an offset
    written into ``dateTime`` wins over the label. Graph converts real instants into the label's
    zone, so a wall-clock time in a DST gap never comes from it; an ambiguous one (the repeated
    hour) is read as its first occurrence, as ``zoneinfo`` does with ``fold=0``.
    """
    wall = parse_wall_clock(str(value["dateTime"]))
    if wall.tzinfo is None:
        label = value.get("timeZone")
        zone = resolve_zone(label) if isinstance(label, str) and label.strip() else _UTC
        wall = wall.replace(tzinfo=zone)
    return wall.astimezone(UTC)


def start_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) whose wall-clock date in ``zone`` is ``day`` or later.

    Usually local midnight. Where midnight falls in a DST gap (clocks jumping over it, as in
    America/Santiago or, for a whole day, Pacific/Apia in 2011), it is the instant of the jump.
    """
    midnight = datetime.combine(day, time())
    first = midnight.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the earlier of two readings
    if first.astimezone(zone).replace(tzinfo=None) == midnight:
        return first
    # Midnight does not exist. fold=1 reads it with the offset after the jump, which lands before
    # the jump; the day starts at the jump, found between the two readings to the second.
    lo = midnight.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = first
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            break
        if mid.astimezone(zone).date() >= day:
            hi = mid
        else:
            lo = mid
    return hi
