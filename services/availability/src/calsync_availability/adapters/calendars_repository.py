"""SQL of booking calendars (tables of migration ``availability_0003``).

Everything runs on the connection of the caller's transaction. A calendar is read in one round
trip (its members aggregated as JSON beside the row).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from calsync_availability.domain.booking_calendars import (
    BookingCalendar,
    CalendarType,
    Member,
    WorkingSpan,
)
from calsync_availability.domain.errors import CalendarNotFound
from calsync_common.postgres import Connection as Db

_SELECT = """
SELECT c.calendar_id, c.sub_account_id, c.name, c.type, c.slot_length, c.buffer_before,
       c.buffer_after, c.minimum_notice, c.outlook_conflicts, c.on_stale, c.stale_after,
       c.version, c.created_at, c.updated_at,
       (SELECT coalesce(json_agg(json_build_array(m.user_id, m.time_zone, m.working_hours)
                                 ORDER BY m.position), '[]')
          FROM booking_calendar_members m WHERE m.calendar_id = c.calendar_id) AS members
  FROM booking_calendars c
"""

#: ``key_share``: FOR KEY SHARE, which a concurrent DELETE waits for (a booking being made keeps
#: its calendar until it commits) but an update of the calendar's fields does not.
Lock = Literal["update", "key_share"] | None
_LOCKS = {None: "", "update": " FOR UPDATE OF c", "key_share": " FOR KEY SHARE OF c"}


@dataclass(frozen=True)
class Position:
    """Where a page of the list ends (its last calendar), for keyset pagination."""

    created_at: datetime
    calendar_id: UUID


async def load_calendar(
    db: Db, sub_account_id: str, calendar_id: UUID | str, *, lock: Lock = None
) -> BookingCalendar:
    """The calendar ``calendar_id`` of ``sub_account_id``, members in order, or
    :class:`CalendarNotFound` (also for another sub-account's id, and for a string that is no
    UUID: the bookings table keeps calendar ids as text). ``lock="key_share"`` holds the
    calendar against deletion until the caller's transaction ends."""
    if isinstance(calendar_id, str):
        try:
            calendar_id = UUID(calendar_id)
        except ValueError:
            raise CalendarNotFound() from None
    row = await db.fetchrow(
        _SELECT + " WHERE c.calendar_id = $1 AND c.sub_account_id = $2" + _LOCKS[lock],
        calendar_id,
        sub_account_id,
    )
    if row is None:
        raise CalendarNotFound()
    return _to_calendar(row)


class CalendarsRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def get(
        self, sub_account_id: str, calendar_id: UUID | str, *, lock: Lock = None
    ) -> BookingCalendar:
        return await load_calendar(self._db, sub_account_id, calendar_id, lock=lock)

    async def list(
        self,
        sub_account_id: str,
        *,
        limit: int,
        after: Position | None = None,
        user_id: str | None = None,
        calendar_type: CalendarType | None = None,
    ) -> list[BookingCalendar]:
        """Oldest first (then by id), from just after ``after``; only calendars ``user_id`` is a
        member of, and of ``calendar_type``, when given."""
        rows = await self._db.fetch(
            _SELECT + " WHERE c.sub_account_id = $1"  # noqa: S608 (constant text, $n values)
            " AND ($2::timestamptz IS NULL OR (c.created_at, c.calendar_id) > ($2, $3::uuid))"
            " AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM booking_calendar_members m"
            "      WHERE m.calendar_id = c.calendar_id AND m.sub_account_id = $1"
            "      AND m.user_id = $4))"
            " AND ($5::text IS NULL OR c.type = $5)"
            " ORDER BY c.created_at, c.calendar_id LIMIT $6",
            sub_account_id,
            after.created_at if after else None,
            after.calendar_id if after else None,
            user_id,
            calendar_type,
            limit,
        )
        return [_to_calendar(r) for r in rows]

    async def add(self, c: BookingCalendar) -> None:
        await self._db.execute(
            "INSERT INTO booking_calendars (calendar_id, sub_account_id, name, type, slot_length,"
            " buffer_before, buffer_after, minimum_notice, outlook_conflicts, on_stale,"
            " stale_after, version, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            *_values(c),
        )
        await self._insert_members(c)

    async def update(self, c: BookingCalendar, *, expected_version: int) -> bool:
        """Replace the stored calendar with ``c`` if its version is still ``expected_version``
        (False otherwise: someone changed it since it was read)."""
        updated = await self._db.fetchval(
            "UPDATE booking_calendars SET name = $3, type = $4, slot_length = $5,"
            " buffer_before = $6, buffer_after = $7, minimum_notice = $8,"
            " outlook_conflicts = $9, on_stale = $10, stale_after = $11, version = $12,"
            " updated_at = $13"
            " WHERE calendar_id = $1 AND sub_account_id = $2 AND version = $14 RETURNING true",
            *_values(c)[:12],
            c.updated_at,
            expected_version,
        )
        if not updated:
            return False
        await self._db.execute("DELETE FROM booking_calendar_members WHERE calendar_id = $1", c.id)
        await self._insert_members(c)
        return True

    async def delete(self, sub_account_id: str, calendar_id: UUID) -> bool:
        deleted = await self._db.fetchval(
            "DELETE FROM booking_calendars WHERE calendar_id = $1 AND sub_account_id = $2"
            " RETURNING true",
            calendar_id,
            sub_account_id,
        )
        return bool(deleted)

    async def has_upcoming_bookings(
        self, sub_account_id: str, calendar_id: UUID, now: datetime
    ) -> bool:
        """Whether a confirmed booking of the calendar has not ended by ``now``."""
        found = await self._db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM bookings WHERE sub_account_id = $1"
            " AND booking_calendar_id = $2 AND status = 'confirmed' AND upper(during) > $3)",
            sub_account_id,
            str(calendar_id),
            now,
        )
        return bool(found)

    async def _insert_members(self, c: BookingCalendar) -> None:
        await self._db.execute(
            "INSERT INTO booking_calendar_members"
            " (calendar_id, position, sub_account_id, user_id, time_zone, working_hours)"
            " SELECT $1, p.position - 1, $2, p.user_id, p.time_zone, p.hours::jsonb"
            " FROM unnest($3::text[], $4::text[], $5::text[])"
            " WITH ORDINALITY AS p(user_id, time_zone, hours, position)",
            c.id,
            c.sub_account_id,
            [m.user_id for m in c.members],
            [m.time_zone for m in c.members],
            [_hours_json(m) for m in c.members],
        )


def _values(c: BookingCalendar) -> tuple[Any, ...]:
    return (
        c.id,
        c.sub_account_id,
        c.name,
        c.type,
        c.slot_length,
        c.buffer_before,
        c.buffer_after,
        c.minimum_notice,
        c.outlook_conflicts,
        c.on_stale,
        c.stale_after,
        c.version,
        c.created_at,
        c.updated_at,
    )


def _hours_json(m: Member) -> str:
    return json.dumps([[s.weekday, s.start_minute, s.end_minute] for s in m.working_hours])


def _to_calendar(row: Any) -> BookingCalendar:
    members = tuple(
        Member(
            user_id=user_id,
            time_zone=time_zone,
            working_hours=tuple(WorkingSpan(*span) for span in hours),
        )
        for user_id, time_zone, hours in json.loads(row["members"])
    )
    return BookingCalendar(
        id=row["calendar_id"],
        sub_account_id=row["sub_account_id"],
        name=row["name"],
        type=row["type"],
        members=members,
        slot_length=row["slot_length"],
        buffer_before=row["buffer_before"],
        buffer_after=row["buffer_after"],
        minimum_notice=row["minimum_notice"],
        outlook_conflicts=row["outlook_conflicts"],
        on_stale=row["on_stale"],
        stale_after=row["stale_after"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
