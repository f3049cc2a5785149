"""Normalised calendar events of connected calendars (``calsync.calendar-events.v1``).

Times are UTC instants; all-day events keep the mailbox's local midnights converted to UTC by the
sync-worker, so the projection never has to guess a zone. Keyed per calendar so every change of
one calendar stays in order.

A resync (a full read of the calendar's window) is a sequence on that key rather than one message,
so no calendar is too large for Kafka's message limit: ``CalendarResyncStarted``, then
``CalendarResyncPage`` 0, 1, ... with the ids found, then ``CalendarResyncCompleted``, all sharing a
``resync_id``. :func:`resync_events` builds the sequence.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from calsync_common.contracts.base import EventPayload, register
from calsync_common.contracts.topics import CALENDAR_EVENTS

ShowAs = Literal["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"]
EventKind = Literal["singleInstance", "occurrence", "exception"]

# Resync pages. Graph event ids are base64 of ~110 bytes (about 150 characters); 512 leaves room
# for longer ids without letting one id dominate a page. 1,000 ids of 150-200 characters make a
# page of 150-200 KB; the byte budget caps pages of long or escaped ids (JSON may spend up to 12
# bytes on one character), so a page is at most 256 KiB of ids plus ~1 KiB of envelope: a quarter
# of Kafka's default 1 MiB message limit.
MAX_EVENT_ID_LENGTH = 512
MAX_PAGE_IDS = 1_000
MAX_PAGE_ID_BYTES = 256 * 1024
EventId = Annotated[str, Field(min_length=1, max_length=MAX_EVENT_ID_LENGTH)]


def calendar_key(connection_id: UUID, calendar_id: str) -> str:
    return f"{connection_id}/{calendar_id}"


@register
class CalendarEventUpserted(EventPayload):
    """An event instance as it now is (occurrences of a series arrive one by one)."""

    event_type: ClassVar[str] = "dev.calsync.calendar_event.upserted.v1"
    topic: ClassVar[str] = CALENDAR_EVENTS.name

    connection_id: UUID
    calendar_id: str
    event_id: EventId
    series_master_id: EventId | None = None
    kind: EventKind = "singleInstance"
    start: AwareDatetime
    end: AwareDatetime
    is_all_day: bool = False
    show_as: ShowAs
    is_cancelled: bool = False
    change_key: str | None = None
    #: Set when the event is a calsync booking written back to the Linked Calendar (echo).
    booking_id: UUID | None = None
    observed_at: AwareDatetime

    @model_validator(mode="after")
    def _end_after_start(self) -> CalendarEventUpserted:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        return self

    def partition_key(self) -> str:
        return calendar_key(self.connection_id, self.calendar_id)


@register
class CalendarEventRemoved(EventPayload):
    event_type: ClassVar[str] = "dev.calsync.calendar_event.removed.v1"
    topic: ClassVar[str] = CALENDAR_EVENTS.name

    connection_id: UUID
    calendar_id: str
    event_id: EventId
    observed_at: AwareDatetime

    def partition_key(self) -> str:
        return calendar_key(self.connection_id, self.calendar_id)


BookingEventChange = Literal["moved", "deleted"]


@register
class BookingEventChangedInOutlook(EventPayload):
    """Two-way sync: the user moved or deleted, in Outlook, the event calsync wrote for a booking.

    Published only for connections whose sync preference is ``two_way``, and only for changes
    calsync did not make itself (its own reschedules and cancellations come back as echoes and
    are not reported). ``booking_version`` is the version calsync last wrote, so a consumer can
    tell a change to an outdated write from one to the current booking. ``moved`` carries the new
    ``start`` and ``end``; ``deleted`` carries neither.
    """

    event_type: ClassVar[str] = "dev.calsync.calendar_event.booking_changed.v1"
    topic: ClassVar[str] = CALENDAR_EVENTS.name

    connection_id: UUID
    calendar_id: str
    event_id: EventId
    booking_id: UUID
    booking_version: int = Field(ge=1)
    change: BookingEventChange
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    observed_at: AwareDatetime

    @model_validator(mode="after")
    def _times_match_change(self) -> BookingEventChangedInOutlook:
        if self.change == "moved":
            if self.start is None or self.end is None:
                raise ValueError("a moved event carries start and end")
            if self.end < self.start:
                raise ValueError("end must not be before start")
        elif self.start is not None or self.end is not None:
            raise ValueError("a deleted event carries no times")
        return self

    def partition_key(self) -> str:
        return calendar_key(self.connection_id, self.calendar_id)


class _CalendarResyncEvent(EventPayload):
    """Fields every event of a resync carries: the calendar (the key) and the resync's id."""

    topic: ClassVar[str] = CALENDAR_EVENTS.name

    connection_id: UUID
    calendar_id: str
    resync_id: UUID

    def partition_key(self) -> str:
        return calendar_key(self.connection_id, self.calendar_id)


@register
class CalendarResyncStarted(_CalendarResyncEvent):
    """A full read of the calendar's window began; its pages and completion follow on this key."""

    event_type: ClassVar[str] = "dev.calsync.calendar.resync_started.v1"

    window_start: AwareDatetime
    window_end: AwareDatetime
    observed_at: AwareDatetime

    @model_validator(mode="after")
    def _window_not_reversed(self) -> CalendarResyncStarted:
        if self.window_end < self.window_start:
            raise ValueError("window_end must not be before window_start")
        return self


@register
class CalendarResyncPage(_CalendarResyncEvent):
    """Ids of instances the resync found in the window: one page of them, numbered from 0.

    At most 1,000 ids of 1 to 512 characters, taking at most 256 KiB as a JSON array (the
    ``MAX_*`` constants), so that a page stays far below Kafka's default 1 MiB message limit.
    """

    event_type: ClassVar[str] = "dev.calsync.calendar.resync_page.v1"

    page: int = Field(ge=0)
    event_ids: tuple[EventId, ...] = Field(min_length=1, max_length=MAX_PAGE_IDS)

    @model_validator(mode="after")
    def _page_within_byte_budget(self) -> CalendarResyncPage:
        size = _ids_json_size(self.event_ids)
        if size > MAX_PAGE_ID_BYTES:
            raise ValueError(f"event_ids take {size} bytes as JSON, over {MAX_PAGE_ID_BYTES}")
        return self


@register
class CalendarResyncCompleted(_CalendarResyncEvent):
    """The resync read the whole window: instances listed in no page of it are gone from the window.

    A consumer applies the removals only here, and only when it saw this resync's Started and
    every page ``0 .. pages - 1`` with ``total_event_ids`` ids in all; otherwise (it missed part
    of the resync) it removes nothing and waits for the next resync.
    """

    event_type: ClassVar[str] = "dev.calsync.calendar.resync_completed.v1"

    pages: int = Field(ge=0)
    total_event_ids: int = Field(ge=0)
    observed_at: AwareDatetime

    @model_validator(mode="after")
    def _counts_consistent(self) -> CalendarResyncCompleted:
        # Pages are never empty, so the counts bound each other.
        if not self.pages <= self.total_event_ids <= self.pages * MAX_PAGE_IDS:
            raise ValueError(f"{self.total_event_ids} ids cannot fill {self.pages} page(s)")
        return self


def resync_events(
    connection_id: UUID,
    calendar_id: str,
    window_start: datetime,
    window_end: datetime,
    event_ids: Iterable[str],
    observed_at: datetime,
    resync_id: UUID,
) -> list[EventPayload]:
    """The events of one resync, in publishing order: Started, the pages, Completed.

    Ids keep their order; a page closes when it holds ``MAX_PAGE_IDS`` ids or the next id would
    take it over ``MAX_PAGE_ID_BYTES``.
    """
    scope = {"connection_id": connection_id, "calendar_id": calendar_id, "resync_id": resync_id}
    events: list[EventPayload] = [
        CalendarResyncStarted(
            **scope, window_start=window_start, window_end=window_end, observed_at=observed_at
        )
    ]
    page: list[str] = []
    size = 2  # "[]"
    total = 0
    for event_id in event_ids:
        grows = len(json.dumps(event_id)) + (2 if page else 0)  # ", " between items
        if len(page) == MAX_PAGE_IDS or size + grows > MAX_PAGE_ID_BYTES:
            events.append(CalendarResyncPage(**scope, page=len(events) - 1, event_ids=page))
            page, size, grows = [], 2, len(json.dumps(event_id))
        page.append(event_id)
        size += grows
        total += 1
    if page:
        events.append(CalendarResyncPage(**scope, page=len(events) - 1, event_ids=page))
    events.append(
        CalendarResyncCompleted(
            **scope, pages=len(events) - 1, total_event_ids=total, observed_at=observed_at
        )
    )
    return events


def _ids_json_size(event_ids: Iterable[str]) -> int:
    """Bytes of the ids as the envelope writes them (``json.dumps`` defaults: ASCII, ``", "``)."""
    return len(json.dumps(list(event_ids)))
