"""Bookings taken by the availability service (``calsync.bookings.v1``), keyed per booking."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import AwareDatetime, Field

from calsync_common.contracts.base import EventPayload, register
from calsync_common.contracts.calendar_events import EventId, ShowAs
from calsync_common.contracts.topics import BOOKINGS


class _BookingEvent(EventPayload):
    topic: ClassVar[str] = BOOKINGS.name

    booking_id: UUID
    version: int = Field(ge=1)
    sub_account_id: str
    user_id: str
    booking_calendar_id: str
    occurred_at: AwareDatetime

    def partition_key(self) -> str:
        return str(self.booking_id)


@register
class BookingConfirmed(_BookingEvent):
    event_type: ClassVar[str] = "dev.calsync.booking.confirmed.v1"

    start: AwareDatetime
    end: AwareDatetime
    title: str = Field(max_length=255)


@register
class BookingRescheduled(_BookingEvent):
    event_type: ClassVar[str] = "dev.calsync.booking.rescheduled.v1"

    start: AwareDatetime
    end: AwareDatetime


@register
class BookingCancelled(_BookingEvent):
    event_type: ClassVar[str] = "dev.calsync.booking.cancelled.v1"


@register
class BookingConflictDetected(_BookingEvent):
    """Blocking Outlook time arrived over a time this booking already holds (the person
    double-booked themselves in Outlook). The booking stays; the conflict is reported, never
    dropped. ``version`` is the booking's version when the conflict was found; the write-back
    ignores this event."""

    event_type: ClassVar[str] = "dev.calsync.booking.conflict_detected.v1"

    start: AwareDatetime
    end: AwareDatetime
    connection_id: UUID
    calendar_id: str
    event_id: EventId
    show_as: ShowAs
    conflict_start: AwareDatetime
    conflict_end: AwareDatetime
