"""Booking calendars kept in memory by one replica, for the booking path's hottest read.

A cached calendar is never trusted on its own: the statement that reads the members' time also
reads the calendar's stored ``version`` (``member_busy_query.members_window``), in the same
snapshot, and a calendar whose version moved (updated, deleted) is dropped here and the
attempt planned again from the database (``CalendarChanged``). So a replica never needs to hear
of another's change, and a cache entry saves a round trip without ever deciding an answer.
"""

from __future__ import annotations

from collections import OrderedDict

from calsync_availability.domain.booking_calendars import BookingCalendar

#: Calendars kept per replica (least recently used dropped first): a calendar with its members'
#: working hours is a few kilobytes at most.
DEFAULT_ENTRIES = 10_000


class CalendarCache:
    def __init__(self, entries: int = DEFAULT_ENTRIES) -> None:
        if entries < 1:
            raise ValueError("a calendar cache holds at least one calendar")
        self._entries = entries
        self._calendars: OrderedDict[tuple[str, str], BookingCalendar] = OrderedDict()

    def get(self, sub_account_id: str, calendar_id: str) -> BookingCalendar | None:
        """``calendar_id`` as ``str(UUID)`` spells it."""
        key = (sub_account_id, calendar_id)
        found = self._calendars.get(key)
        if found is not None:
            self._calendars.move_to_end(key)
        return found

    def put(self, calendar: BookingCalendar) -> None:
        key = (calendar.sub_account_id, str(calendar.id))
        self._calendars[key] = calendar
        self._calendars.move_to_end(key)
        while len(self._calendars) > self._entries:
            self._calendars.popitem(last=False)

    def drop(self, sub_account_id: str, calendar_id: str) -> None:
        self._calendars.pop((sub_account_id, calendar_id), None)

    def __len__(self) -> int:
        return len(self._calendars)
