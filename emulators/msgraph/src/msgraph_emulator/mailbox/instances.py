"""Instances (calendarView items) of stored events: single instances, occurrences, exceptions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from msgraph_emulator.mailbox.ids import occurrence_id
from msgraph_emulator.mailbox.model import Event, Instance
from msgraph_emulator.mailbox.recurrence import occurrences


def start_key(original_start: datetime) -> int:
    return int(original_start.astimezone(UTC).timestamp())


def single(event: Event) -> Instance:
    return Instance(event.id, "singleInstance", event.start, event.end, event)


def occurrence_at(master: Event, original_start: datetime) -> Instance | None:
    """The live instance (occurrence or exception) that started at ``original_start``."""
    assert master.recurrence is not None
    key = start_key(original_start)
    if key in master.cancelled:
        return None
    exception = master.exceptions.get(key)
    if exception is not None:
        return _exception(master, exception)
    for start, end in occurrences(master.recurrence, master.start, master.end):
        k = start_key(start)
        if k == key:
            return _occurrence(master, start, end)
        if k > key:
            return None
    return None


def _occurrence(master: Event, start: datetime, end: datetime) -> Instance:
    return Instance(
        occurrence_id(master.id, start), "occurrence", start, end, master, master, start
    )


def _exception(master: Event, exc: Event) -> Instance:
    return Instance(exc.id, "exception", exc.start, exc.end, exc, master, exc.original_start)


def _overlaps(start: datetime, end: datetime, lo: datetime, hi: datetime) -> bool:
    """calendarView semantics: an instance is in [lo, hi) if it overlaps; zero-length at lo too."""
    s, e = start.astimezone(UTC), end.astimezone(UTC)
    return s < hi and (e > lo or (s == e and s >= lo))


def series_in_window(master: Event, lo: datetime, hi: datetime) -> Iterator[Instance]:
    assert master.recurrence is not None
    for start, end in occurrences(master.recurrence, master.start, master.end):
        if start.astimezone(UTC) >= hi:
            break
        key = start_key(start)
        if key in master.cancelled or key in master.exceptions:
            continue
        if _overlaps(start, end, lo, hi):
            yield _occurrence(master, start, end)
    for key, exc in master.exceptions.items():
        if key not in master.cancelled and _overlaps(exc.start, exc.end, lo, hi):
            yield _exception(master, exc)


def event_in_window(event: Event, lo: datetime, hi: datetime) -> list[Instance]:
    if event.recurrence is not None:
        return list(series_in_window(event, lo, hi))
    if _overlaps(event.start, event.end, lo, hi):
        return [single(event)]
    return []


def in_window(events: Iterable[Event], lo: datetime, hi: datetime) -> list[Instance]:
    """All instances overlapping [lo, hi), ordered by start then id (a stable paging order)."""
    found: list[Instance] = []
    for event in events:
        found.extend(event_in_window(event, lo, hi))
    found.sort(key=lambda i: (i.start_utc, i.id))
    return found
