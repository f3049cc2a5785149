"""Booking calendars: what can be booked, with whom, when, and how stale data is treated.

A calendar's invariants are checked when it is built (``BookingCalendar.__post_init__``), so a
calendar that exists anywhere in the service (read from the database, received over HTTP) obeys
them; each broken rule is an :class:`InvalidCalendar` naming the field, with a stable code.
"""

from __future__ import annotations

import functools
import itertools
import zoneinfo
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Literal, get_args
from uuid import UUID

from calsync_availability.domain.errors import (
    InvalidCalendar,
    InvalidMembers,
    InvalidTimeZone,
    InvalidWorkingHours,
    OutlookNotSupportedForEventCalendars,
)

CalendarType = Literal["personal", "round_robin", "collective", "class", "service", "event"]
CALENDAR_TYPES: tuple[CalendarType, ...] = get_args(CalendarType)
#: Types whose availability is one person's: the single member (personal) or the first.
SINGLE_HOST_TYPES: frozenset[CalendarType] = frozenset({"personal", "class", "service", "event"})
StalePolicy = Literal["fail_closed", "proceed"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MINUTES_PER_DAY = 24 * 60
MAX_MEMBERS = 50
MAX_SPANS_PER_MEMBER = 7 * 8

SLOT_LENGTH = (timedelta(minutes=5), timedelta(hours=24))
BUFFER = (timedelta(0), timedelta(hours=24))
MINIMUM_NOTICE = (timedelta(0), timedelta(days=365))
STALE_AFTER = (timedelta(seconds=30), timedelta(days=7))
DEFAULT_STALE_AFTER = timedelta(seconds=900)


@dataclass(frozen=True, order=True)
class WorkingSpan:
    """One weekly stretch of working time, in the member's own wall-clock time.

    ``weekday`` 0 is Monday; minutes count from local midnight, ``end_minute`` 1440 being the
    midnight that ends the day (a night shift is two spans: 22:00-24:00 and 00:00-06:00 of the
    next day, and they join into one stretch).
    """

    weekday: int
    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class Member:
    """A person of the sub-account (its ``user_id``) bookable through the calendar."""

    user_id: str
    #: IANA time zone name of the working hours (``Europe/Bucharest``).
    time_zone: str
    working_hours: tuple[WorkingSpan, ...]

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)  # ZoneInfo caches its instances


@dataclass(frozen=True)
class BookingCalendar:
    id: UUID
    sub_account_id: str
    name: str
    type: CalendarType
    #: In the order the calendar lists them: the first is the host of single-host types and
    #: the round-robin rotation's order.
    members: tuple[Member, ...]
    slot_length: timedelta
    buffer_before: timedelta
    buffer_after: timedelta
    #: No slot starts sooner than this after "now".
    minimum_notice: timedelta
    #: Whether members' Outlook Conflict Calendars block time (never for ``event`` calendars).
    outlook_conflicts: bool
    #: What booking does when a member's Outlook data is staler than ``stale_after``.
    on_stale: StalePolicy
    stale_after: timedelta
    version: int
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        _check(self)

    @property
    def hosts(self) -> tuple[Member, ...]:
        """Whose time the calendar offers: the first member for single-host types, else all."""
        return self.members[:1] if self.type in SINGLE_HOST_TYPES else self.members

    def member(self, user_id: str) -> Member | None:
        return next((m for m in self.members if m.user_id == user_id), None)

    def is_stale(self, last_synced_at: datetime | None, now: datetime) -> bool:
        """Whether Outlook data last synced at ``last_synced_at`` (None: never) is too old."""
        return last_synced_at is None or now - last_synced_at > self.stale_after


def default_outlook_conflicts(calendar_type: CalendarType) -> bool:
    """Outlook conflicts block time by default on every type but ``event`` (which never can)."""
    return calendar_type != "event"


@dataclass(frozen=True)
class CalendarDraft:
    """What a client chooses of a calendar (the body of a create or a full replacement)."""

    name: str
    type: CalendarType
    members: tuple[Member, ...]
    slot_length: timedelta
    buffer_before: timedelta
    buffer_after: timedelta
    minimum_notice: timedelta
    outlook_conflicts: bool
    on_stale: StalePolicy
    stale_after: timedelta

    def create(self, calendar_id: UUID, sub_account_id: str, now: datetime) -> BookingCalendar:
        """A new calendar, version 1 (raises :class:`InvalidCalendar` when a rule is broken)."""
        return self._build(calendar_id, sub_account_id, 1, now, now)

    def replace(self, current: BookingCalendar, now: datetime) -> BookingCalendar:
        """``current`` with every field of this draft, the next version; identity, tenancy and
        creation time are kept."""
        return self._build(
            current.id, current.sub_account_id, current.version + 1, current.created_at, now
        )

    def _build(
        self,
        calendar_id: UUID,
        sub_account_id: str,
        version: int,
        created_at: datetime,
        updated_at: datetime,
    ) -> BookingCalendar:
        chosen = {f.name: getattr(self, f.name) for f in fields(self)}
        return BookingCalendar(
            id=calendar_id,
            sub_account_id=sub_account_id,
            version=version,
            created_at=created_at,
            updated_at=updated_at,
            **chosen,
        )


def minute_text(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@functools.cache
def _known_zones() -> frozenset[str]:
    # The catalogue of names rather than ZoneInfo(key) alone: that would also open paths that
    # are not zone names (an absolute path, "localtime"), depending on the machine.
    return frozenset(zoneinfo.available_timezones())


def _check(c: BookingCalendar) -> None:
    if c.type not in CALENDAR_TYPES:
        raise InvalidCalendar("type", f"must be one of {', '.join(CALENDAR_TYPES)}")
    if not c.name.strip():
        raise InvalidCalendar("name", "must not be blank")
    _within("slot_minutes", c.slot_length, SLOT_LENGTH)
    _within("buffer_before_minutes", c.buffer_before, BUFFER)
    _within("buffer_after_minutes", c.buffer_after, BUFFER)
    _within("minimum_notice_minutes", c.minimum_notice, MINIMUM_NOTICE)
    _within("stale_after_seconds", c.stale_after, STALE_AFTER)
    if c.on_stale not in get_args(StalePolicy):
        raise InvalidCalendar("on_stale", "must be fail_closed or proceed")
    if c.type == "event" and c.outlook_conflicts:
        raise OutlookNotSupportedForEventCalendars(
            "event calendars offer their own schedule only; outlook_conflicts must be false"
        )
    _check_members(c)


def _within(field: str, value: timedelta, bounds: tuple[timedelta, timedelta]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise InvalidCalendar(field, f"must be between {low} and {high}")


def _check_members(c: BookingCalendar) -> None:
    if c.type == "personal" and len(c.members) != 1:
        raise InvalidMembers("members", "a personal calendar has exactly one member")
    if not 1 <= len(c.members) <= MAX_MEMBERS:
        raise InvalidMembers("members", f"a calendar has 1 to {MAX_MEMBERS} members")
    seen: set[str] = set()
    for i, m in enumerate(c.members):
        if not m.user_id or m.user_id in seen:
            raise InvalidMembers(f"members.{i}.user_id", "user ids must be non-empty and unique")
        seen.add(m.user_id)
        if m.time_zone not in _known_zones():
            raise InvalidTimeZone(f"members.{i}.time_zone", "not an IANA time zone name")
        _check_hours(f"members.{i}.working_hours", m.working_hours)


def _check_hours(field: str, spans: tuple[WorkingSpan, ...]) -> None:
    if len(spans) > MAX_SPANS_PER_MEMBER:
        raise InvalidWorkingHours(field, f"at most {MAX_SPANS_PER_MEMBER} spans")
    for i, s in enumerate(spans):
        if not 0 <= s.weekday < len(WEEKDAYS):
            raise InvalidWorkingHours(f"{field}.{i}.day", "not a day of the week")
        if not 0 <= s.start_minute < s.end_minute <= MINUTES_PER_DAY:
            raise InvalidWorkingHours(f"{field}.{i}", "start must come before end, within a day")
    ordered = sorted(spans)
    for before, after in itertools.pairwise(ordered):
        if before.weekday == after.weekday and before.end_minute > after.start_minute:
            raise InvalidWorkingHours(
                field, f"{WEEKDAYS[after.weekday]}: {_text(before)} overlaps {_text(after)}"
            )


def _text(span: WorkingSpan) -> str:
    return f"{minute_text(span.start_minute)}-{minute_text(span.end_minute)}"
