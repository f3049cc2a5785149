"""Normalised calendar events of connected calendars (``calsync.calendar-events.v1``).

Times are UTC instants; all-day events keep the mailbox's local midnights converted to UTC by the
sync-worker, so the projection never has to guess a zone. Keyed per calendar so every change of
one calendar stays in order.
"""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, model_validator

from calsync_common.contracts.base import EventPayload, register
from calsync_common.contracts.topics import CALENDAR_EVENTS

ShowAs = Literal["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"]
EventKind = Literal["singleInstance", "occurrence", "exception"]


def calendar_key(connection_id: UUID, calendar_id: str) -> str:
    return f"{connection_id}/{calendar_id}"


@register
class CalendarEventUpserted(EventPayload):
    """An event instance as it now is (occurrences of a series arrive one by one)."""

    event_type: ClassVar[str] = "dev.calsync.calendar_event.upserted.v1"
    topic: ClassVar[str] = CALENDAR_EVENTS.name

    connection_id: UUID
    calendar_id: str
    event_id: str
    series_master_id: str | None = None
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
    event_id: str
    observed_at: AwareDatetime

    def partition_key(self) -> str:
        return calendar_key(self.connection_id, self.calendar_id)


@register
class CalendarResynced(EventPayload):
    """A full read of the window finished: instances not listed are gone from the calendar."""

    event_type: ClassVar[str] = "dev.calsync.calendar.resynced.v1"
    topic: ClassVar[str] = CALENDAR_EVENTS.name

    connection_id: UUID
    calendar_id: str
    window_start: AwareDatetime
    window_end: AwareDatetime
    event_ids: tuple[str, ...]
    observed_at: AwareDatetime

    def partition_key(self) -> str:
        return calendar_key(self.connection_id, self.calendar_id)
