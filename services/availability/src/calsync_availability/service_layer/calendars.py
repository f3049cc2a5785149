"""Use cases of booking calendars: create, read, list, replace (If-Match) and delete.

Each is one unit of work. Calendars publish no event: no other service needs them (bookings, which
do travel, name their calendar).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

from calsync_availability.adapters.calendars_repository import Position
from calsync_availability.domain.booking_calendars import (
    BookingCalendar,
    CalendarDraft,
    CalendarType,
)
from calsync_availability.domain.errors import (
    CalendarHasUpcomingBookings,
    CalendarNotFound,
    CalendarVersionMismatch,
)
from calsync_availability.service_layer.unit_of_work import AvailabilityWork
from calsync_common.postgres.uow import PostgresUnitOfWork


@dataclass(frozen=True)
class CalendarPage:
    calendars: list[BookingCalendar]
    #: Where the next page starts (None: this is the last page).
    next: Position | None


class CalendarsService:
    def __init__(
        self, uow: PostgresUnitOfWork[AvailabilityWork], clock: Callable[[], datetime]
    ) -> None:
        self._uow = uow
        self._clock = clock

    async def create(self, sub_account_id: str, draft: CalendarDraft) -> BookingCalendar:
        calendar = draft.create(uuid4(), sub_account_id, self._clock())
        async with self._uow() as work:
            await work.calendars.add(calendar)
        return calendar

    async def get(self, sub_account_id: str, calendar_id: UUID | str) -> BookingCalendar:
        async with self._uow() as work:
            return await work.calendars.get(sub_account_id, calendar_id)

    async def list(
        self,
        sub_account_id: str,
        *,
        limit: int,
        after: Position | None = None,
        user_id: str | None = None,
        calendar_type: CalendarType | None = None,
    ) -> CalendarPage:
        async with self._uow() as work:
            found = await work.calendars.list(
                sub_account_id,
                limit=limit + 1,  # one more tells whether another page follows
                after=after,
                user_id=user_id,
                calendar_type=calendar_type,
            )
        page = found[:limit]
        more = len(found) > limit
        return CalendarPage(page, Position(page[-1].created_at, page[-1].id) if more else None)

    async def replace(
        self,
        sub_account_id: str,
        calendar_id: UUID | str,
        draft: CalendarDraft,
        if_match: int | None,
    ) -> BookingCalendar:
        """The whole calendar replaced by ``draft``; ``if_match`` (a version) must be current."""
        async with self._uow() as work:
            current = await work.calendars.get(sub_account_id, calendar_id, lock="update")
            if if_match is not None and if_match != current.version:
                raise CalendarVersionMismatch()
            changed = draft.replace(current, self._clock())
            if not await work.calendars.update(changed, expected_version=current.version):
                raise CalendarVersionMismatch()  # unreachable under the row lock; kept as a guard
            return changed

    async def delete(
        self, sub_account_id: str, calendar_id: UUID | str, if_match: int | None
    ) -> None:
        """Gone, with its members. Refused while a confirmed booking of it has not ended: the
        row lock waits for bookings being made (they hold the calendar ``key_share``)."""
        async with self._uow() as work:
            current = await work.calendars.get(sub_account_id, calendar_id, lock="update")
            if if_match is not None and if_match != current.version:
                raise CalendarVersionMismatch()
            if await work.calendars.has_upcoming_bookings(
                sub_account_id, current.id, self._clock()
            ):
                raise CalendarHasUpcomingBookings(
                    "cancel the calendar's upcoming bookings before deleting it"
                )
            if not await work.calendars.delete(sub_account_id, current.id):
                raise CalendarNotFound()
