"""Bookable slots of a booking calendar: working hours minus busy time and buffers (pure)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from calsync_availability.domain.booking_calendars import BookingCalendar, Member
from calsync_availability.domain.errors import InvalidWindow, OutlookNotSupportedForEventCalendars
from calsync_availability.domain.working_hours import working_spans

#: The longest query window :func:`free_slots` accepts (its cost grows with the window).
MAX_WINDOW = timedelta(days=62)


@dataclass(frozen=True)
class Busy:
    """Time a member cannot be booked, ``[start, end)`` (timezone-aware)."""

    start: datetime
    end: datetime
    #: True for time from the member's Outlook Conflict Calendars, False for calsync's own
    #: bookings. Event calendars refuse Outlook time (the product's rule).
    outlook: bool


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    #: The members free for the whole slot, in the calendar's member order (never empty).
    members: tuple[str, ...]


def free_slots(
    calendar: BookingCalendar,
    busy: Mapping[str, Iterable[Busy]],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[Slot]:
    """The bookable slots of ``calendar`` inside ``[start, end)``, sorted by start.

    Inputs: ``busy`` maps a member's ``user_id`` to that member's busy time (Outlook and
    bookings; a member missing from it is busy nowhere). ``start``, ``end`` and ``now`` are
    timezone-aware; the answer is the same whatever zones they are given in.

    Contract:

    - **Slots** are ``calendar.slot_length`` long and lie wholly inside ``[start, end)``; none
      starts before ``now + calendar.minimum_notice``.
    - **Grid**: the candidate starts are every occurrence's start of each host's working spans
      (:func:`working_hours.working_spans`, in the host's own zone, DST included) plus whole
      multiples of the slot length, up to that span's end; a slot may run past its span's end
      into a span that joins it (a night shift across midnight). Candidates of every host count.
    - **A member is free for a slot** when the slot lies within their working hours and
      ``[slot.start - buffer_before, slot.end + buffer_after)`` overlaps none of their busy time.
      Buffers need no working hours: a 09:00 slot with a 15-minute buffer before is bookable.
    - **By type**: ``round_robin`` offers a slot when any member is free (``Slot.members`` lists
      who is); ``collective`` when every member is; ``personal``, ``service``, ``class`` and
      ``event`` offer the first member's time (``Slot.members`` is that member).
    - **Outlook**: busy time with ``outlook=True`` is ignored when ``calendar.outlook_conflicts``
      is false; on an ``event`` calendar it raises :class:`OutlookNotSupportedForEventCalendars`
      (their availability is their own schedule only: pass bookings, never Outlook time).
    - Raises :class:`InvalidWindow` unless ``start < end``, both aware, and the window spans at
      most :data:`MAX_WINDOW`.
    """
    _check_window(start, end, now)
    length = _micros(calendar.slot_length)
    low, high = _micros(start), _micros(end)
    earliest = max(low, _micros(now + calendar.minimum_notice))
    free = {
        m.user_id: _Availability(calendar, m, busy.get(m.user_id, ()), start, end)
        for m in calendar.hosts
    }
    candidates: set[int] = set()
    for availability in free.values():
        candidates.update(availability.grid(length, earliest, high))
    ordered = sorted(candidates)
    # Who is free at each candidate, in member order: each host's free intervals pick their
    # candidates by bisection, instead of asking every host about every candidate.
    holders: dict[int, list[str]] = {}
    for user_id, availability in free.items():
        for at in availability.free_starts(ordered, length):
            holders.setdefault(at, []).append(user_id)
    need = len(free) if calendar.type == "collective" else 1
    slots: list[Slot] = []
    for at in ordered:
        members = holders.get(at)
        if members is not None and len(members) >= need:
            slot_start = _EPOCH + timedelta(microseconds=at)
            slots.append(Slot(slot_start, slot_start + calendar.slot_length, tuple(members)))
    return slots


def round_robin_order(
    calendar: BookingCalendar, members_free: Collection[str], last_assigned: str | None
) -> tuple[str, ...]:
    """Who a round-robin booking should go to, best first: the members of ``members_free`` in
    the calendar's member order, rotated to begin just after ``last_assigned`` (the member the
    calendar's previous booking went to; None, or no longer a member: from the first member).
    Deterministic: the same inputs give the same order; try them in turn."""
    order = [m.user_id for m in calendar.members]
    if last_assigned in order:
        cut = order.index(last_assigned) + 1
        order = order[cut:] + order[:cut]
    return tuple(u for u in order if u in members_free)


def require_outlook_supported(calendar: BookingCalendar) -> None:
    """For a request that asks for Outlook-based availability: refused on ``event`` calendars."""
    if calendar.type == "event":
        raise OutlookNotSupportedForEventCalendars(
            "event calendars never use Outlook conflicts; their availability is their own schedule"
        )


def _check_window(start: datetime, end: datetime, now: datetime) -> None:
    if any(t.tzinfo is None or t.utcoffset() is None for t in (start, end, now)):
        raise InvalidWindow("start, end and now must carry a time zone offset")
    if not start < end:
        raise InvalidWindow("start must come before end")
    if end - start > MAX_WINDOW:
        raise InvalidWindow(f"the window spans at most {MAX_WINDOW.days} days")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(at: datetime | timedelta) -> int:
    """Microseconds since the epoch (or in a duration): exact, and cheap to compare."""
    return (at - _EPOCH if isinstance(at, datetime) else at) // _MICROSECOND


def _blocked(
    calendar: BookingCalendar, busy: Iterable[Busy], start: datetime, end: datetime
) -> list[tuple[int, int]]:
    # A slot [s, e) clashes with busy [b, f) when [s - before, e + after) meets it, that is when
    # [s, e) meets [b - after, f + before). Busy time that cannot meet the window is dropped.
    before, after = _micros(calendar.buffer_before), _micros(calendar.buffer_after)
    # low < end and high > start, compared as datetimes before any conversion.
    begins_before, ends_after = end + calendar.buffer_after, start - calendar.buffer_before
    event = calendar.type == "event"
    kept: list[tuple[int, int]] = []
    for b in busy:
        if b.outlook:
            if event:
                require_outlook_supported(calendar)
            if not calendar.outlook_conflicts:
                continue
        if b.start < begins_before and b.end > ends_after:
            kept.append((_micros(b.start) - after, _micros(b.end) + before))
    return _merge(kept)


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for low, high in sorted(intervals):
        if low >= high:
            continue
        if out and low <= out[-1][1]:
            if high > out[-1][1]:
                out[-1] = (out[-1][0], high)
        else:
            out.append((low, high))
    return out


def _subtract(keep: list[tuple[int, int]], remove: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``keep`` minus ``remove``, both sorted and disjoint."""
    out: list[tuple[int, int]] = []
    j = 0
    for low, high in keep:
        while j < len(remove) and remove[j][1] <= low:
            j += 1
        at, k = low, j
        while k < len(remove) and remove[k][0] < high:
            if remove[k][0] > at:
                out.append((at, remove[k][0]))
            at = max(at, remove[k][1])
            k += 1
        if at < high:
            out.append((at, high))
    return out


class _Availability:
    """One host over the query window: the grid origins (working spans) and free time (working
    hours minus blocked time), in microseconds since the epoch."""

    __slots__ = ("_free_ends", "_free_starts", "_spans", "_working_ends", "_working_starts")

    def __init__(
        self,
        calendar: BookingCalendar,
        member: Member,
        busy: Iterable[Busy],
        start: datetime,
        end: datetime,
    ) -> None:
        self._spans = [
            (_micros(s.start), _micros(s.end)) for s in working_spans(member, start, end)
        ]
        working = _merge(self._spans)
        self._working_starts = [low for low, _ in working]
        self._working_ends = [high for _, high in working]
        free = _subtract(working, _blocked(calendar, busy, start, end))
        self._free_starts = [low for low, _ in free]
        self._free_ends = [high for _, high in free]

    def grid(self, length: int, earliest: int, end: int) -> list[int]:
        """This host's grid starts whose slot lies in the window, starts at or after
        ``earliest``, and fits the host's working hours (busy or not: another host may be free)."""
        starts: list[int] = []
        for span_start, span_end in self._spans:
            if span_end <= earliest or span_start >= end:
                continue
            at = span_start + max(0, -((span_start - earliest) // length)) * length
            while at < span_end and at + length <= end:
                i = bisect_right(self._working_starts, at) - 1
                if self._working_ends[i] >= at + length:
                    starts.append(at)
                at += length
        return starts

    def free_starts(self, ordered: list[int], length: int) -> list[int]:
        """The starts of ``ordered`` (sorted) whose ``length``-long slot lies wholly in one of
        this host's free intervals (disjoint and sorted, so a slot fits in at most one)."""
        found: list[int] = []
        for low, high in zip(self._free_starts, self._free_ends, strict=True):
            first = bisect_left(ordered, low)
            last = bisect_right(ordered, high - length)
            if first < last:
                found.extend(ordered[first:last])
        return found
