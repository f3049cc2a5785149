"""Instances (calendarView items) of stored events: single instances, occurrences, exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from msgraph_emulator.mailbox.expansion import expansion_of
from msgraph_emulator.mailbox.ids import occurrence_id
from msgraph_emulator.mailbox.model import Event, Instance


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
    span = expansion_of(master).at(key)
    return None if span is None else _occurrence(master, *span)


def _occurrence(master: Event, start: datetime, end: datetime) -> Instance:
    return Instance(
        occurrence_id(master.id, start), "occurrence", start, end, master, master, start
    )


def _exception(master: Event, exc: Event) -> Instance:
    return Instance(exc.id, "exception", exc.start, exc.end, exc, master, exc.original_start)


def overlaps(start: datetime, end: datetime, lo: datetime, hi: datetime) -> bool:
    """calendarView semantics: an instance is in [lo, hi) if it overlaps; zero-length at lo too."""
    s, e = start.astimezone(UTC), end.astimezone(UTC)
    return s < hi and (e > lo or (s == e and s >= lo))


#: A window entry before it becomes an :class:`Instance` (built only for the page served):
#: ``(UTC start, id, event, master, position)``; position >= 0 is an occurrence at that place of
#: the master's expansion, SINGLE a single instance, EXCEPTION an exception of ``master``.
Row = tuple[float, str, Event, Event | None, int]
SINGLE, EXCEPTION = -1, -2


def hits(s: float, e: float, lo: float, hi: float) -> bool:
    """``overlaps`` on UTC timestamps."""
    return s < hi and (e > lo or (s == e and s >= lo))


def series_rows(master: Event, lo: datetime, hi: datetime) -> Iterator[Row]:
    """Rows of a series' occurrences and exceptions overlapping [lo, hi), cancelled left out.

    Only the part of the expansion near the window is visited (see ``mailbox.expansion``).
    """
    cancelled, exceptions = master.cancelled, master.exceptions
    expansion = expansion_of(master)
    lo_ts, hi_ts = lo.timestamp(), hi.timestamp()
    starts, ends = expansion.starts, expansion.ends
    for i in expansion.window(lo_ts, hi_ts):
        s = starts[i]
        if not hits(s, ends[i], lo_ts, hi_ts):
            continue
        if (cancelled or exceptions) and (int(s) in cancelled or int(s) in exceptions):
            continue
        yield s, expansion.occurrence_id(i, master.id), master, master, i
    for key, exc in exceptions.items():
        if key not in cancelled and overlaps(exc.start, exc.end, lo, hi):
            yield exc.start.timestamp(), exc.id, exc, master, EXCEPTION


def materialize(row: Row) -> Instance:
    _, item_id, event, master, position = row
    if position == SINGLE:
        return single(event)
    assert master is not None
    if position == EXCEPTION:
        return _exception(master, event)
    start, end = expansion_of(master).spans[position]
    return Instance(item_id, "occurrence", start, end, master, master, start)


def series_in_window(master: Event, lo: datetime, hi: datetime) -> Iterator[Instance]:
    """Occurrences and exceptions of a series overlapping [lo, hi), cancelled ones left out."""
    return (materialize(row) for row in series_rows(master, lo, hi))


def event_in_window(event: Event, lo: datetime, hi: datetime) -> list[Instance]:
    if event.recurrence is not None:
        return list(series_in_window(event, lo, hi))
    if overlaps(event.start, event.end, lo, hi):
        return [single(event)]
    return []
