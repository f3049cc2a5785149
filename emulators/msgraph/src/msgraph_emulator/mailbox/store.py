"""One user's mailbox: calendars, events, transactionId index, and an ordered change log.

The change log gives every create/update/delete of a stored event (single, series master) a
monotonically increasing sequence number, so a delta round reads only the entries after its
token (O(changes)) instead of scanning the mailbox. Each calendar also has a
:class:`~msgraph_emulator.mailbox.index.CalendarIndex` for calendarView windows; ``record``
re-files the changed event, so every write path keeps it current.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from msgraph_emulator.mailbox import ids
from msgraph_emulator.mailbox.errors import malformed_id, not_found
from msgraph_emulator.mailbox.index import CalendarIndex
from msgraph_emulator.mailbox.instances import occurrence_at
from msgraph_emulator.mailbox.model import Calendar, Event, Instance


@dataclass(frozen=True)
class LogEntry:
    seq: int
    calendar_id: str
    event_id: str


@dataclass
class Located:
    """A looked-up item: the stored event (single or master) and, for an occurrence id, the
    instance it names (a plain occurrence or an exception)."""

    event: Event
    instance: Instance | None = None


@dataclass
class Mailbox:
    user_id: str
    tenant_id: str
    calendars: dict[str, Calendar] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    by_calendar: dict[str, dict[str, Event]] = field(default_factory=dict)
    transactions: dict[str, str] = field(default_factory=dict)
    seq: int = 0
    log: list[LogEntry] = field(default_factory=list)
    log_limit: int = 200_000
    indexes: dict[str, CalendarIndex] = field(default_factory=dict)

    def add_calendar(self, calendar: Calendar) -> Calendar:
        self.calendars[calendar.id] = calendar
        self.by_calendar.setdefault(calendar.id, {})
        self.indexes.setdefault(calendar.id, CalendarIndex())
        return calendar

    def drop_calendar(self, calendar_id: str) -> list[Event]:
        """Take a calendar out with every stored event in it; returns those events.

        Its change-log entries stay (the log is shared by the mailbox); no delta round reads
        them, since a removed calendar's delta routes answer 404."""
        gone = list(self.by_calendar.get(calendar_id, {}).values())
        for event in gone:
            self.remove(event)
        self.calendars.pop(calendar_id, None)
        self.by_calendar.pop(calendar_id, None)
        self.indexes.pop(calendar_id, None)
        return gone

    def instances(self, calendar_id: str, lo: datetime, hi: datetime) -> Sequence[Instance]:
        """calendarView of one calendar: instances overlapping [lo, hi), by start then id.

        Instances are built as they are read (a page costs the page, not the window)."""
        index = self.indexes.get(calendar_id)
        return () if index is None else index.window(lo, hi)

    def default_calendar(self) -> Calendar:
        return next(c for c in self.calendars.values() if c.is_default)

    def calendar(self, calendar_id: str) -> Calendar:
        found = self.calendars.get(calendar_id)
        if found is None:
            raise malformed_id() if not ids.is_well_formed(calendar_id) else not_found()
        return found

    def put(self, event: Event) -> None:
        self.events[event.id] = event
        self.by_calendar.setdefault(event.calendar_id, {})[event.id] = event
        self.indexes.setdefault(event.calendar_id, CalendarIndex()).add(event)
        if event.transaction_id:
            self.transactions[event.transaction_id] = event.id

    def remove(self, event: Event) -> None:
        self.events.pop(event.id, None)
        self.by_calendar.get(event.calendar_id, {}).pop(event.id, None)
        index = self.indexes.get(event.calendar_id)
        if index is not None:
            index.discard(event.id)
        if event.transaction_id and self.transactions.get(event.transaction_id) == event.id:
            del self.transactions[event.transaction_id]

    def locate(self, item_id: str) -> Located:
        event = self.events.get(item_id)
        if event is not None:
            return Located(event)
        parsed = ids.parse_occurrence_id(item_id)
        if parsed is None:
            raise malformed_id() if not ids.is_well_formed(item_id) else not_found()
        master = self.events.get(parsed[0])
        if master is None or master.recurrence is None:
            raise not_found()
        instance = occurrence_at(master, parsed[1])
        if instance is None:
            raise not_found()
        return Located(master, instance)

    def record(self, calendar_id: str, event_id: str) -> int:
        event = self.events.get(event_id)
        if event is not None:  # re-file: the change may have moved it or made it a series
            self.indexes.setdefault(event.calendar_id, CalendarIndex()).add(event)
        self.seq += 1
        self.log.append(LogEntry(self.seq, calendar_id, event_id))
        if len(self.log) > self.log_limit:
            del self.log[: len(self.log) - self.log_limit]
        return self.seq

    @property
    def log_floor(self) -> int:
        """Lowest sequence a token may hold and still be answered (older ones: 410)."""
        return self.log[0].seq - 1 if self.log else self.seq

    def changes_since(self, seq: int) -> list[LogEntry]:
        if not self.log or seq >= self.seq:
            return []
        first = self.log[0].seq
        return self.log[max(0, seq + 1 - first) :]
