"""The booking path's view of the booking calendars and the busy projection.

Binds :class:`service_layer.bookings.AvailabilitySources` to the modules that own those tables
(``calendars_repository``, ``busy_queries``), translating their answers to the booking domain.
Given a :class:`CalendarCache`, :meth:`ProjectionSources.calendar_unlocked` answers from it, and
:meth:`ProjectionSources.window` checks every calendar it is given against the stored version
in its own statement (``CalendarChanged`` when they differ), so a cached calendar never decides
an answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from calsync_availability.adapters import busy_queries, member_busy_query
from calsync_availability.adapters.calendar_cache import CalendarCache
from calsync_availability.adapters.calendars_repository import load_calendar
from calsync_availability.domain.booking_calendars import BookingCalendar
from calsync_availability.domain.bookings import BusyInterval, CalendarChanged, MembersWindow
from calsync_availability.domain.projection import CalendarFreshness
from calsync_common.postgres import Connection


class ProjectionSources:
    def __init__(self, cache: CalendarCache | None = None) -> None:
        self.cache = cache

    async def calendar(
        self, conn: Connection, sub_account_id: str, calendar_id: str
    ) -> BookingCalendar:
        return await load_calendar(conn, sub_account_id, calendar_id, lock="key_share")

    async def calendar_unlocked(
        self, conn: Connection, sub_account_id: str, calendar_id: str
    ) -> BookingCalendar:
        if self.cache is None:
            return await load_calendar(conn, sub_account_id, calendar_id)
        try:
            spelled = str(UUID(calendar_id))
        except ValueError:
            spelled = calendar_id  # load_calendar refuses it as not found
        cached = self.cache.get(sub_account_id, spelled)
        if cached is not None:
            return cached
        calendar = await load_calendar(conn, sub_account_id, calendar_id)
        self.cache.put(calendar)
        return calendar

    async def vouch(self, conn: Connection, calendar: BookingCalendar) -> None:
        stored = await conn.fetchval(
            "SELECT version FROM booking_calendars WHERE calendar_id = $1 AND sub_account_id = $2",
            calendar.id,
            calendar.sub_account_id,
        )
        self.confirm(calendar, stored)

    def confirm(self, calendar: BookingCalendar, stored_version: int | None) -> None:
        """:class:`CalendarChanged` (and ``calendar`` dropped from the cache) unless
        ``stored_version`` (None: the calendar is gone) is ``calendar``'s."""
        if stored_version == calendar.version:
            return
        if self.cache is not None:
            self.cache.drop(calendar.sub_account_id, str(calendar.id))
        raise CalendarChanged()

    async def outlook_busy(
        self,
        conn: Connection,
        sub_account_id: str,
        user_ids: Sequence[str],
        start: datetime,
        end: datetime,
    ) -> list[BusyInterval]:
        rows = await busy_queries.outlook_busy(conn, sub_account_id, user_ids, start, end)
        return [
            BusyInterval(
                r.user_id,
                r.start,
                r.end,
                "outlook",
                connection_id=r.connection_id,
                calendar_id=r.calendar_id,
                event_id=r.event_id,
                show_as=r.show_as,
            )
            for r in rows
        ]

    async def window(
        self,
        conn: Connection,
        sub_account_id: str,
        user_ids: Sequence[str],
        start: datetime,
        end: datetime,
        calendar: BookingCalendar,
        now: datetime,
    ) -> MembersWindow:
        outlook = calendar.outlook_conflicts
        policed = outlook and calendar.on_stale != "proceed"
        found = await member_busy_query.members_window(
            conn, sub_account_id, user_ids, start, end, outlook=outlook, freshness=policed,
            calendar_id=calendar.id,
        )  # fmt: skip
        self.confirm(calendar, found.calendar_version)
        stale: dict[str, list[dict[str, Any]]] = {}
        for f in found.calendars:
            if f.is_stale(now, calendar.stale_after):
                stale.setdefault(f.user_id, []).append(freshness_json(f))
        return MembersWindow(found.busy, stale)

    async def sync_preference(
        self, conn: Connection, sub_account_id: str, user_id: str, connection_id: UUID
    ) -> str | None:
        member = await busy_queries.member_connection(conn, sub_account_id, user_id)
        if member is None or member.connection_id != connection_id:
            return None
        return member.sync_preference


def freshness_json(f: CalendarFreshness) -> dict[str, Any]:
    """A Conflict Calendar's freshness as answers show it (no private details)."""
    return {
        "connection_id": str(f.connection_id),
        "calendar_id": f.calendar_id,
        "connection_status": f.connection_status,
        "status": f.status,
        "subscription": f.subscription,
        "last_synced_at": f.last_synced_at.isoformat() if f.last_synced_at else None,
    }
