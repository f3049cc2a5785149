"""How booking calendars look over HTTP: the request body, the document, the list and its cursor.

Durations are whole minutes (``stale_after_seconds`` in seconds), working hours ``HH:MM`` in the
member's own time zone (``24:00`` ends a day).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from calsync_availability.adapters.calendars_repository import Position
from calsync_availability.domain.booking_calendars import (
    BUFFER,
    MAX_MEMBERS,
    MAX_SPANS_PER_MEMBER,
    MINIMUM_NOTICE,
    SLOT_LENGTH,
    STALE_AFTER,
    WEEKDAYS,
    BookingCalendar,
    CalendarDraft,
    CalendarType,
    Member,
    StalePolicy,
    WorkingSpan,
    default_outlook_conflicts,
    minute_text,
)
from calsync_common.http.problems import Problem

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_START = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_END = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"


_MINUTE = timedelta(minutes=1)
_SLOT = (SLOT_LENGTH[0] // _MINUTE, SLOT_LENGTH[1] // _MINUTE)
_BUFFER = (BUFFER[0] // _MINUTE, BUFFER[1] // _MINUTE)
_NOTICE = (MINIMUM_NOTICE[0] // _MINUTE, MINIMUM_NOTICE[1] // _MINUTE)
_STALE = (STALE_AFTER[0] // timedelta(seconds=1), STALE_AFTER[1] // timedelta(seconds=1))


class WorkingHours(BaseModel):
    """One weekly span of working time, in the member's time zone."""

    model_config = ConfigDict(extra="forbid")

    day: Weekday
    start: str = Field(pattern=_START, examples=["09:00"])
    end: str = Field(pattern=_END, examples=["17:00"], description="24:00 ends the day")


class CalendarMember(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=200, description="A user of the sub-account")
    time_zone: str = Field(
        min_length=1, max_length=64, examples=["Europe/Bucharest"], description="IANA name"
    )
    working_hours: list[WorkingHours] = Field(default_factory=list, max_length=MAX_SPANS_PER_MEMBER)


class CalendarRequest(BaseModel):
    """A calendar as a client writes it (POST creates, PUT replaces every field)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    type: CalendarType
    members: list[CalendarMember] = Field(min_length=1, max_length=MAX_MEMBERS)
    slot_minutes: int = Field(ge=_SLOT[0], le=_SLOT[1])
    buffer_before_minutes: int = Field(default=0, ge=_BUFFER[0], le=_BUFFER[1])
    buffer_after_minutes: int = Field(default=0, ge=_BUFFER[0], le=_BUFFER[1])
    minimum_notice_minutes: int = Field(default=0, ge=_NOTICE[0], le=_NOTICE[1])
    outlook_conflicts: bool | None = Field(
        default=None,
        description="Members' Outlook Conflict Calendars block time; default true, except on "
        "event calendars, which never use Outlook (true is 422 "
        "outlook_not_supported_for_event_calendars)",
    )
    on_stale: StalePolicy = Field(
        default="fail_closed",
        description="Booking when a member's Outlook data is staler than stale_after_seconds",
    )
    stale_after_seconds: int = Field(default=900, ge=_STALE[0], le=_STALE[1])

    def to_draft(self) -> CalendarDraft:
        return CalendarDraft(
            name=self.name,
            type=self.type,
            members=tuple(
                Member(
                    user_id=m.user_id,
                    time_zone=m.time_zone,
                    working_hours=tuple(sorted(_span(h) for h in m.working_hours)),
                )
                for m in self.members
            ),
            slot_length=timedelta(minutes=self.slot_minutes),
            buffer_before=timedelta(minutes=self.buffer_before_minutes),
            buffer_after=timedelta(minutes=self.buffer_after_minutes),
            minimum_notice=timedelta(minutes=self.minimum_notice_minutes),
            outlook_conflicts=(
                default_outlook_conflicts(self.type)
                if self.outlook_conflicts is None
                else self.outlook_conflicts
            ),
            on_stale=self.on_stale,
            stale_after=timedelta(seconds=self.stale_after_seconds),
        )


class BookingCalendarDocument(BaseModel):
    """A booking calendar as the API shows it (its version is also the ETag)."""

    id: UUID
    sub_account_id: str
    name: str
    type: CalendarType
    members: list[CalendarMember]
    slot_minutes: int
    buffer_before_minutes: int
    buffer_after_minutes: int
    minimum_notice_minutes: int
    outlook_conflicts: bool
    on_stale: StalePolicy
    stale_after_seconds: int
    version: int
    created_at: datetime
    updated_at: datetime


class CalendarList(BaseModel):
    calendars: list[BookingCalendarDocument]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: last")


class CalendarListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=200)
    user_id: str | None = Field(default=None, min_length=1, max_length=200)
    type: CalendarType | None = None


def _span(h: WorkingHours) -> WorkingSpan:
    return WorkingSpan(WEEKDAYS.index(h.day), _minute(h.start), _minute(h.end))


def _minute(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def calendar_document(c: BookingCalendar) -> dict[str, Any]:
    minute = _MINUTE
    return BookingCalendarDocument(
        id=c.id,
        sub_account_id=c.sub_account_id,
        name=c.name,
        type=c.type,
        members=[
            CalendarMember(
                user_id=m.user_id,
                time_zone=m.time_zone,
                working_hours=[
                    WorkingHours(
                        day=WEEKDAYS[s.weekday],
                        start=minute_text(s.start_minute),
                        end=minute_text(s.end_minute),
                    )
                    for s in m.working_hours
                ],
            )
            for m in c.members
        ],
        slot_minutes=c.slot_length // minute,
        buffer_before_minutes=c.buffer_before // minute,
        buffer_after_minutes=c.buffer_after // minute,
        minimum_notice_minutes=c.minimum_notice // minute,
        outlook_conflicts=c.outlook_conflicts,
        on_stale=c.on_stale,
        stale_after_seconds=c.stale_after // timedelta(seconds=1),
        version=c.version,
        created_at=c.created_at,
        updated_at=c.updated_at,
    ).model_dump(mode="json")


def encode_cursor(position: Position) -> str:
    raw = f"{position.created_at.isoformat()}|{position.calendar_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor of :func:`encode_cursor` names, or 422 ``invalid_cursor``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, _, calendar_id = raw.partition("|")
        position = Position(datetime.fromisoformat(created_at), UUID(calendar_id))
    except (ValueError, binascii.Error):
        raise Problem(422, "invalid_cursor", "The cursor is not one this API gave") from None
    if position.created_at.tzinfo is None:
        raise Problem(422, "invalid_cursor", "The cursor is not one this API gave")
    return position


def etag(c: BookingCalendar) -> str:
    return f'"v{c.version}"'


def parse_if_match(header: str | None) -> int | None:
    """The version an ``If-Match`` names: None when absent or ``*``; -1 when it names none of
    ours (so it matches nothing, RFC 9110 §13.1.1)."""
    if header is None or header.strip() == "*":
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if value.startswith("v") and value[1:].isascii() and value[1:].isdigit() and len(value) < 20:
        return int(value[1:])
    return -1
