"""Bookings: what may be booked, by whom, and the rules that pick a member (no I/O here).

A *booking* as the API shows it is a group of *holds*, one per member whose time it takes: one
for personal, round robin, service and class calendars, one per member for collective calendars.
Each hold is a row of ``bookings`` (its ``booking_id`` is what ``calsync.bookings.v1`` and the
write-back speak of); for a single-member booking the group id and the hold id are the same.
All holds of a group change together and carry the same version.

Intervals are half-open ``[start, end)``, as ``tstzrange`` builds them: 10:00-11:00 does not
conflict with 11:00-12:00.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from calsync_availability.domain.booking_calendars import BookingCalendar
from calsync_availability.domain.errors import (
    AvailabilityError,
    CalendarNotFound,
    OutlookNotSupportedForEventCalendars,
)
from calsync_availability.domain.intervals import Interval

BookingStatus = Literal["confirmed", "cancelled"]
ChangedBy = Literal["api", "outlook"]
SourceKind = Literal["booking", "outlook"]

#: The longest booking accepted (a guard against nonsense, not a product rule).
MAX_BOOKING_LENGTH = timedelta(days=1)


# --- errors (each maps to one problem ``code``; the base and the mapping are domain/errors.py's)


class BookingError(AvailabilityError):
    #: Whether an answer with this error is kept for a retry with the same Idempotency-Key.
    #: Errors that depend on a passing condition (sync freshness) are not: a retry may succeed.
    replayable: bool = True

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self._extensions = extensions

    def extensions(self) -> dict[str, Any]:
        return dict(self._extensions)


class BookingNotFound(BookingError):
    status, code, title = 404, "booking_not_found", "No such booking"


class SlotUnavailable(BookingError):
    status, code, title = 409, "slot_unavailable", "The slot is not available"


class CalendarSyncStale(BookingError):
    status, code, title = 409, "calendar_sync_stale", "A member's calendar sync is stale"
    replayable = False


class BookingCancelledError(BookingError):
    status, code, title = 409, "booking_cancelled", "The booking is cancelled"


class InvalidBookingTime(BookingError):
    status, code, title = 422, "invalid_booking_time", "The booking's times are not valid"


class UserNotMember(BookingError):
    status, code, title = 422, "user_not_member", "The user is not a member of this calendar"


class SlotNotOffered(BookingError):
    status, code = 422, "slot_not_offered"
    title = "The calendar does not offer this slot (working hours, slot grid, minimum notice)"


class CalendarHasNoMembers(BookingError):
    status, code, title = 422, "calendar_has_no_members", "The calendar has no members"


class IdempotencyKeyReused(BookingError):
    status, code = 422, "idempotency_key_reused"
    title = "The Idempotency-Key was used for another request"


#: Replayable answers of errors defined elsewhere (calendar lookups, the event-calendar rule).
REPLAYABLE_ELSEWHERE = (CalendarNotFound, OutlookNotSupportedForEventCalendars)


# --- values ----------------------------------------------------------------------------------


class CalendarChanged(Exception):
    """The calendar an attempt was planned with is no longer the stored one (its version moved,
    or it is gone): plan the attempt again from the stored calendar. Never an answer."""


@dataclass(frozen=True)
class BusyInterval:
    """Time a member cannot be booked: a confirmed booking or blocking Outlook time."""

    user_id: str
    start: datetime
    end: datetime
    source: SourceKind
    booking_id: UUID | None = None
    connection_id: UUID | None = None
    calendar_id: str | None = None
    event_id: str | None = None
    show_as: str | None = None


@dataclass(frozen=True)
class MembersWindow:
    """Members' busy time over a window and, where the calendar's stale policy is
    ``fail_closed``, those whose Conflict Calendars are staler than it allows (with why)."""

    busy: list[BusyInterval]
    stale: dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class Hold:
    """One member's row of a booking."""

    booking_id: UUID
    user_id: str
    version: int
    status: BookingStatus


@dataclass(frozen=True)
class Booking:
    group_id: UUID
    sub_account_id: str
    booking_calendar_id: str
    start: datetime
    end: datetime
    title: str
    status: BookingStatus
    version: int
    changed_by: ChangedBy
    created_at: datetime
    updated_at: datetime
    holds: tuple[Hold, ...]
    outlook_change: dict[str, Any] | None = None

    @property
    def user_ids(self) -> list[str]:
        return [h.user_id for h in self.holds]


@dataclass(frozen=True)
class WriteBack:
    booking_id: UUID
    booking_version: int
    outcome: str
    reason: str | None
    will_retry: bool
    occurred_at: datetime
    event_id: str | None = None
    connection_id: UUID | None = None
    calendar_id: str | None = None


@dataclass(frozen=True)
class Conflict:
    booking_id: UUID
    booking_version: int
    connection_id: UUID
    calendar_id: str
    event_id: str
    show_as: str
    #: The overlap of the Outlook event with the booking.
    start: datetime
    end: datetime
    detected_at: datetime
    resolved_at: datetime | None = None


# --- rules -----------------------------------------------------------------------------------


def check_times(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidBookingTime("start and end must carry a UTC offset")
    if end <= start:
        raise InvalidBookingTime("end must be after start")
    if end - start > MAX_BOOKING_LENGTH:
        raise InvalidBookingTime(f"a booking lasts at most {MAX_BOOKING_LENGTH}")


def members_to_hold(calendar: BookingCalendar, user_id: str | None) -> tuple[list[str], bool]:
    """Who the booking may take: (candidates in the calendar's member order, all_of_them).

    * ``collective``: every member, all of them (a ``user_id`` cannot narrow it);
    * ``round_robin``: one free member, picked by :func:`slots.round_robin_order`; a
      ``user_id`` pins that member (it must be one);
    * ``personal``, ``service``, ``class``, ``event``: the calendar's host (its first member,
      as free slots offer it); a ``user_id``, when given, must be the host.
    """
    hosts = [m.user_id for m in calendar.hosts]
    if not hosts:
        raise CalendarHasNoMembers()
    if calendar.type == "collective":
        if user_id is not None:
            raise UserNotMember("a collective booking takes every member; give no user_id")
        return hosts, True
    if user_id is not None:
        if user_id not in hosts:
            raise UserNotMember(f"{user_id!r} is not a bookable member of this calendar")
        return [user_id], False
    return hosts, False


def blocked_window(calendar: BookingCalendar, start: datetime, end: datetime) -> Interval:
    """The time the booking must find free: the slot widened by the calendar's buffers."""
    return Interval(start - calendar.buffer_before, end + calendar.buffer_after)


def conflicts_of(
    window: Interval, busy: Iterable[BusyInterval], ignore_group: Iterable[UUID] = ()
) -> list[BusyInterval]:
    """Busy time over ``window``, in time order; a booking's own holds are ignored (reschedule)."""
    ignored = set(ignore_group)
    return sorted(
        (
            b
            for b in busy
            if b.start < window.end
            and window.start < b.end
            and not (b.source == "booking" and b.booking_id in ignored)
        ),
        key=lambda b: (b.start, b.end, b.user_id, b.source),
    )


def public_conflicts(conflicts: Iterable[BusyInterval]) -> list[dict[str, str]]:
    """What a 409 shows of the time in the way: member, times and the kind of source only."""
    return [
        {
            "user_id": c.user_id,
            "start": c.start.isoformat(),
            "end": c.end.isoformat(),
            "source": c.source,
        }
        for c in conflicts
    ]
