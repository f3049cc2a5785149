"""Read use cases of the API: a member's busy time, and a calendar's free slots.

Reads take one pooled connection and no transaction (each statement sees what is committed;
nothing here needs a consistent snapshot across statements, and BEGIN/COMMIT would add two round
trips to the busiest endpoint). Free slots take the calendar from the replica's cache when it is
there; the statement that reads the hosts' time reads its stored version too, and a calendar
that moved is read again, so an answer is always the stored calendar's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from calsync_availability.adapters import member_busy_query
from calsync_availability.adapters.availability_sources import ProjectionSources, freshness_json
from calsync_availability.adapters.calendar_cache import CalendarCache
from calsync_availability.domain.booking_calendars import BookingCalendar
from calsync_availability.domain.bookings import BusyInterval, CalendarChanged
from calsync_availability.domain.errors import InvalidWindow
from calsync_availability.domain.projection import CalendarFreshness
from calsync_availability.domain.slots import (
    MAX_WINDOW,
    Slot,
    free_slots,
    require_outlook_supported,
)
from calsync_common.transient import RetryLater

#: Reads of a calendar and its hosts' time before giving up on a calendar that keeps changing
#: (each read after the first is from the database: the cached calendar was dropped).
CALENDAR_READS = 3


@dataclass(frozen=True)
class MemberBusy:
    busy: list[BusyInterval]
    calendars: list[tuple[CalendarFreshness, bool]]


@dataclass(frozen=True)
class CalendarSlots:
    calendar: BookingCalendar
    slots: list[Slot]
    stale: dict[str, list[dict[str, Any]]]


def check_window(start: datetime, end: datetime) -> None:
    if not start < end:
        raise InvalidWindow("start must come before end")
    if end - start > MAX_WINDOW:
        raise InvalidWindow(f"the window spans at most {MAX_WINDOW.days} days")


class AvailabilityQueries:
    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Callable[[], datetime],
        *,
        stale_after: timedelta,
        calendars: CalendarCache | None = None,
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.stale_after = stale_after
        self.sources = ProjectionSources(calendars)

    async def member_busy(
        self, sub_account_id: str, user_id: str, start: datetime, end: datetime
    ) -> MemberBusy:
        """Blocking Outlook time and confirmed bookings of the member over ``[start, end)``,
        in time order, and each Conflict Calendar's freshness (stale beyond the service's
        ``stale_after``)."""
        check_window(start, end)
        async with self.pool.acquire() as conn:
            found = await member_busy_query.member_busy(conn, sub_account_id, user_id, start, end)
        now = self.clock()
        return MemberBusy(
            found.busy, [(f, f.is_stale(now, self.stale_after)) for f in found.calendars]
        )

    async def calendar_slots(
        self,
        sub_account_id: str,
        calendar_id: str,
        start: datetime,
        end: datetime,
        include_outlook: bool | None,
    ) -> CalendarSlots:
        """Free slots of the calendar: its hosts' working hours minus their confirmed bookings
        and (where the calendar uses them) blocking Outlook time, with the calendar's buffers;
        and the hosts whose Outlook data is staler than the calendar allows."""
        check_window(start, end)
        now = self.clock()
        async with self.pool.acquire() as conn:
            for _ in range(CALENDAR_READS):
                calendar = await self.sources.calendar_unlocked(conn, sub_account_id, calendar_id)
                hosts = [m.user_id for m in calendar.hosts]
                # Busy time a buffer away from the window still shortens slots inside it.
                wide_start = start - calendar.buffer_after
                wide_end = end + calendar.buffer_before
                outlook = calendar.outlook_conflicts and include_outlook is not False
                found = await member_busy_query.members_busy_spans(
                    conn, sub_account_id, hosts, wide_start, wide_end, outlook=outlook,
                    freshness=outlook, calendar_id=calendar.id,
                )  # fmt: skip
                try:
                    self.sources.confirm(calendar, found.calendar_version)
                    break
                except CalendarChanged:
                    continue  # changed or gone: read it again, from the database
            else:
                raise RetryLater("the booking calendar kept changing")
        if include_outlook:  # the stored calendar's type, not a cached one's
            require_outlook_supported(calendar)
        busy = found.busy
        stale: dict[str, list[dict[str, Any]]] = {}
        for f in found.calendars:
            if f.is_stale(now, calendar.stale_after):
                stale.setdefault(f.user_id, []).append(freshness_json(f))
        slots = free_slots(calendar, busy, start=start, end=end, now=now)
        return CalendarSlots(calendar, slots, stale)
