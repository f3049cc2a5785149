"""Request and response documents of the bookings API (pydantic: validation and OpenAPI)."""

from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from calsync_availability.service_layer.bookings import BookingView

_ID = Field(min_length=1, max_length=200)


@functools.cache
def _zones() -> frozenset[str]:
    """The IANA names (read once: listing them walks the tz database, ~1 ms a request)."""
    return frozenset(zoneinfo.available_timezones())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BookingRequest(_Strict):
    """``POST .../bookings`` (with an ``Idempotency-Key`` header)."""

    booking_calendar_id: str = _ID
    start: AwareDatetime
    end: AwareDatetime
    title: str = Field(min_length=1, max_length=255)
    #: Round robin: book this member (must be one). Personal, service, class and event: must be
    #: the host when given. Collective: not allowed (every member is booked).
    user_id: str | None = Field(default=None, min_length=1, max_length=200)
    #: Only ``true``: insist on the members' Outlook conflicts (an event calendar answers 422
    #: ``outlook_not_supported_for_event_calendars``). Absent: used wherever the calendar does.
    use_outlook_conflicts: Literal[True] | None = None


class RescheduleRequest(_Strict):
    """``PATCH .../bookings/{booking_id}``: the new times (the same rules as booking)."""

    start: AwareDatetime
    end: AwareDatetime


class WindowQuery(_Strict):
    start: AwareDatetime
    end: AwareDatetime


class FreeSlotsQuery(WindowQuery):
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    include_outlook: bool | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in _zones():
            raise ValueError("not an IANA time zone name")
        return value


class WriteBackDocument(BaseModel):
    booking_version: int
    outcome: Literal["written", "removed", "failed", "skipped"]
    reason: str | None
    will_retry: bool
    occurred_at: datetime


class ConflictDocument(BaseModel):
    connection_id: UUID
    calendar_id: str
    event_id: str
    show_as: str
    #: The overlap of the Outlook event with the booking.
    start: datetime
    end: datetime
    booking_version: int
    detected_at: datetime
    resolved_at: datetime | None


class HoldDocument(BaseModel):
    """One member's part of the booking (its ``booking_id`` is the one calsync.bookings.v1 and
    the Linked Calendar know)."""

    booking_id: UUID
    user_id: str
    version: int
    status: Literal["confirmed", "cancelled"]
    write_back: WriteBackDocument | None
    conflicts: list[ConflictDocument]


class BookingDocument(BaseModel):
    id: UUID
    booking_calendar_id: str
    start: datetime
    end: datetime
    title: str
    status: Literal["confirmed", "cancelled"]
    version: int
    changed_by: Literal["api", "outlook"]
    created_at: datetime
    updated_at: datetime
    members: list[HoldDocument]
    #: What became of the last change made in Outlook (two-way sync), if any.
    outlook_change: dict[str, Any] | None


class BusyIntervalDocument(BaseModel):
    start: datetime
    end: datetime
    source: Literal["outlook", "booking"]
    show_as: str | None = None
    connection_id: UUID | None = None
    calendar_id: str | None = None
    event_id: str | None = None
    booking_id: UUID | None = None


class FreshnessDocument(BaseModel):
    connection_id: UUID
    calendar_id: str
    connection_status: str
    status: str | None
    subscription: str | None
    last_synced_at: datetime | None
    stale: bool


class BusyDocument(BaseModel):
    user_id: str
    start: datetime
    end: datetime
    busy: list[BusyIntervalDocument]
    calendars: list[FreshnessDocument]
    stale: bool


class SlotDocument(BaseModel):
    start: datetime
    end: datetime
    members: list[str]


class StaleMemberDocument(BaseModel):
    user_id: str
    calendars: list[dict[str, Any]]


class FreeSlotsDocument(BaseModel):
    calendar_id: str
    timezone: str
    start: datetime
    end: datetime
    slots: list[SlotDocument]
    #: Members whose Outlook data is staler than the calendar allows (slots may be wrong).
    stale: list[StaleMemberDocument]


def booking_document(view: BookingView) -> dict[str, Any]:
    b = view.booking
    holds = []
    for h in b.holds:
        wb = view.writebacks.get(h.booking_id)
        holds.append(
            {
                "booking_id": str(h.booking_id),
                "user_id": h.user_id,
                "version": h.version,
                "status": h.status,
                "write_back": None
                if wb is None
                else {
                    "booking_version": wb.booking_version,
                    "outcome": wb.outcome,
                    "reason": wb.reason,
                    "will_retry": wb.will_retry,
                    "occurred_at": wb.occurred_at.isoformat(),
                },
                "conflicts": [
                    {
                        "connection_id": str(c.connection_id),
                        "calendar_id": c.calendar_id,
                        "event_id": c.event_id,
                        "show_as": c.show_as,
                        "start": c.start.isoformat(),
                        "end": c.end.isoformat(),
                        "booking_version": c.booking_version,
                        "detected_at": c.detected_at.isoformat(),
                        "resolved_at": c.resolved_at.isoformat() if c.resolved_at else None,
                    }
                    for c in view.conflicts
                    if c.booking_id == h.booking_id
                ],
            }
        )
    return {
        "id": str(b.group_id),
        "booking_calendar_id": b.booking_calendar_id,
        "start": b.start.isoformat(),
        "end": b.end.isoformat(),
        "title": b.title,
        "status": b.status,
        "version": b.version,
        "changed_by": b.changed_by,
        "created_at": b.created_at.isoformat(),
        "updated_at": b.updated_at.isoformat(),
        "members": holds,
        "outlook_change": b.outlook_change,
    }


def dumps(document: Any) -> bytes:
    """Compact JSON (orjson: the standard library's encoder took 7 % of a busy query's CPU)."""
    return orjson.dumps(document)
