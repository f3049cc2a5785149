"""Weekly working hours, kept in a member's own time zone, expanded into UTC intervals.

The rule, one sentence for every day of the year: **a span's start (or end) is the first instant
at which the member's wall clock, on that day, reads the start (or end) time or later.**

- Ordinary times: the local time itself. A 09:00-17:00 day stays 09:00-17:00 local on both sides
  of a DST switch (its UTC times move by an hour; it still lasts 8 hours): only a span that
  contains the switch itself changes length.
- Nonexistent local times (spring forward, e.g. 02:30 in New York or 03:30 in Bucharest on their
  switch days): the clock jumps from before that time to after it, so the boundary is the instant
  of the jump. A span wholly inside the gap (02:00-02:45 in New York) is empty that day; one across
  it (01:00-04:00) is an hour shorter.
- Ambiguous local times (fall back, e.g. 01:30 in New York): the first occurrence (PEP 495
  ``fold=0``, as RFC 5545 §3.3.5 reads such times). A span across the repeated hour (00:00-03:00)
  is an hour longer; one ending inside it (00:00-01:30) ends the first time the clock reads 01:30.

This mapping from local time to instants never goes backwards, so a span never ends before it
starts, and consecutive spans never overlap. Span ``end_minute`` 1440 is the next day's 00:00.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from calsync_availability.domain.booking_calendars import Member
from calsync_availability.domain.intervals import Interval

_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)


@lru_cache(maxsize=65_536)
def wall_clock_instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the wall clock of ``zone`` on ``day`` reads ``minute``
    minutes after midnight, or later (see the module's rule).

    Cached: a pure function of its arguments (a zone's rules are fixed for the process's life),
    asked the same few hundred questions by every free-slots request on a calendar."""
    if minute >= 24 * 60:
        return wall_clock_instant(day + _DAY, minute - 24 * 60, zone)
    local = datetime.combine(day, time()) + timedelta(minutes=minute)
    first = local.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the earlier of two readings
    if _reading(first, zone) == local:
        return first
    # In a gap: the two folds map with the offsets on either side of the jump, which lies between.
    other = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(first, other), max(first, other)
    # Invariant: the clock reads before ``local`` at ``low`` and at or after it at ``high``.
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        middle -= timedelta(microseconds=middle.microsecond)
        if middle <= low:
            break
        if _reading(middle, zone) >= local:
            high = middle
        else:
            low = middle
    return high


def _reading(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def working_spans(member: Member, start: datetime, end: datetime) -> list[Interval]:
    """Every occurrence (UTC, sorted, unclipped, non-empty) of ``member``'s weekly spans on the
    local days that can touch ``[start, end)``, one day of margin each side. Occurrences are kept
    apart (their starts are the slot grid's origins); :func:`intervals.merge` joins them."""
    zone = member.zone
    by_day: dict[int, list[tuple[int, int]]] = {}
    for span in member.working_hours:
        by_day.setdefault(span.weekday, []).append((span.start_minute, span.end_minute))
    out: list[Interval] = []
    for day in _days(start.astimezone(zone).date() - _DAY, end.astimezone(zone).date() + _DAY):
        for start_minute, end_minute in by_day.get(day.weekday(), ()):
            begins = wall_clock_instant(day, start_minute, zone)
            ends = wall_clock_instant(day, end_minute, zone)
            if begins < ends:
                out.append(Interval(begins, ends))
    out.sort()
    return out


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += _DAY
