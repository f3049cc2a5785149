"""Per-calendar index for calendarView windows: O(log n + k) instead of a scan of every event.

* Single instances up to ``LONG_S`` long sit in a list sorted by (UTC start, id): a window
  ``[lo, hi)`` can only overlap those starting in ``[lo - LONG_S, hi)``, found by bisection.
* Longer single instances (multi-day events) are few and are checked one by one.
* Series masters are kept apart; each is expanded only around the window (``expansion``), and
  its exceptions are checked directly.

The mailbox keeps the index current: ``put``/``remove`` add and drop events, and every recorded
change re-files the event it names (a PATCH may move it or turn it into a series).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import overload

from msgraph_emulator.mailbox.instances import (
    SINGLE,
    Row,
    hits,
    materialize,
    overlaps,
    series_rows,
)
from msgraph_emulator.mailbox.model import Event, Instance

LONG_S = 2 * 86_400.0

Key = tuple[float, str]


class CalendarIndex:
    def __init__(self) -> None:
        self._keys: list[Key] = []
        self._filed: dict[str, Key] = {}  # short single id -> its key in _keys
        self._short: dict[str, Event] = {}
        self._ends: dict[str, float] = {}  # short single id -> UTC end
        self._long: dict[str, Event] = {}
        self._masters: dict[str, Event] = {}

    def __len__(self) -> int:
        return len(self._short) + len(self._long) + len(self._masters)

    def add(self, event: Event) -> None:
        """File (or re-file, after a change) a single instance or series master."""
        self.discard(event.id)
        if event.recurrence is not None:
            self._masters[event.id] = event
            return
        start = event.start.timestamp()
        if event.end.timestamp() - start > LONG_S:
            self._long[event.id] = event
            return
        key = (start, event.id)
        insort(self._keys, key)
        self._filed[event.id] = key
        self._short[event.id] = event
        self._ends[event.id] = event.end.timestamp()

    def discard(self, event_id: str) -> None:
        key = self._filed.pop(event_id, None)
        if key is not None:
            del self._keys[bisect_left(self._keys, key)]
            del self._short[event_id]
            del self._ends[event_id]
        self._long.pop(event_id, None)
        self._masters.pop(event_id, None)

    def window(self, lo: datetime, hi: datetime) -> Window:
        """Instances overlapping ``[lo, hi)``, ordered by start then id (a stable paging order)."""
        lo_ts, hi_ts = lo.timestamp(), hi.timestamp()
        first = bisect_left(self._keys, (lo_ts - LONG_S,))
        last = bisect_left(self._keys, (hi_ts,), lo=first)
        rows: list[Row] = []
        ends = self._ends
        for start_ts, event_id in self._keys[first:last]:
            if hits(start_ts, ends[event_id], lo_ts, hi_ts):
                rows.append((start_ts, event_id, self._short[event_id], None, SINGLE))
        for event in self._long.values():
            if overlaps(event.start, event.end, lo, hi):
                rows.append((event.start.timestamp(), event.id, event, None, SINGLE))
        for master in self._masters.values():
            rows.extend(series_rows(master, lo, hi))
        rows.sort(key=_order)
        return Window(rows)


def _order(row: Row) -> tuple[float, str]:
    return row[0], row[1]


class Window(Sequence[Instance]):
    """A window's instances in order; each :class:`Instance` is built only when read, so a page
    of calendarView costs the page, not the whole window."""

    def __init__(self, rows: list[Row]) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Instance]:
        return map(materialize, self._rows)

    @overload
    def __getitem__(self, index: int) -> Instance: ...

    @overload
    def __getitem__(self, index: slice) -> list[Instance]: ...

    def __getitem__(self, index: int | slice) -> Instance | list[Instance]:
        if isinstance(index, slice):
            return [materialize(row) for row in self._rows[index]]
        return materialize(self._rows[index])
