"""Read queries the API calls on the busy projection (asyncpg; answers are domain dataclasses).

The busy query joins each event to its connection's current settings, so a calendar that stopped
being a Conflict Calendar, a ``showAs`` no longer blocking or a disconnected connection release
their time at once. It filters with the predicate of the partial GiST index
``outlook_events_busy`` (``show_as <> 'free' AND booking_id IS NULL``), which it needs to use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from calsync_availability.adapters.projection_repository import BLOCKS
from calsync_availability.domain.projection import (
    BookingConflict,
    BusyInterval,
    CalendarFreshness,
    MemberConnection,
)
from calsync_common.postgres import Connection

_BUSY = f"""
SELECT c.user_id, lower(e.during) AS start, upper(e.during) AS "end",
       e.connection_id, e.calendar_id, e.event_id, e.show_as
FROM outlook_connections c
JOIN outlook_events e ON e.connection_id = c.connection_id
WHERE c.sub_account_id = $1 AND c.user_id = ANY ($2::text[])
  AND e.show_as <> 'free' AND e.booking_id IS NULL
  AND e.during && tstzrange($3, $4)
  AND {BLOCKS}
ORDER BY lower(e.during), upper(e.during), e.connection_id, e.calendar_id, e.event_id
"""  # noqa: S608 (constants only)

_FRESHNESS = """
SELECT c.user_id, c.connection_id, cal.calendar_id, c.status AS connection_status,
       f.status, f.subscription, f.last_synced_at, f.last_error, f.changed_at
FROM outlook_connections c
CROSS JOIN LATERAL unnest(c.conflict_calendar_ids) AS cal(calendar_id)
LEFT JOIN LATERAL (  -- by primary key; LIMIT keeps it a lookup, not a hash of the table
    SELECT * FROM outlook_calendar_freshness f
    WHERE f.connection_id = c.connection_id AND f.calendar_id = cal.calendar_id LIMIT 1
) f ON true
WHERE c.sub_account_id = $1 AND c.user_id = ANY ($2::text[]) AND c.status <> 'disconnected'
ORDER BY c.user_id, c.connection_id, cal.calendar_id
"""

_MEMBER_CONNECTION = """
SELECT connection_id, sub_account_id, user_id, status, sync_preference, linked_calendar_id,
       conflict_calendar_ids, blocking_show_as, time_zone, changed_at
FROM outlook_connections
WHERE sub_account_id = $1 AND user_id = $2
ORDER BY status = 'disconnected', changed_at DESC, version DESC
LIMIT 1
"""

_CONFLICTS = """
SELECT booking_id, connection_id, calendar_id, event_id, show_as, lower(during) AS start,
       upper(during) AS "end", booking_version, detected_at, resolved_at
FROM booking_conflicts
WHERE booking_id = ANY ($1::uuid[])
ORDER BY booking_id, lower(during), connection_id, calendar_id, event_id
"""


async def outlook_busy(
    conn: Connection,
    sub_account_id: str,
    user_ids: Sequence[str],
    start: datetime,
    end: datetime,
) -> list[BusyInterval]:
    """Blocking Outlook time of these members overlapping ``[start, end)`` (whole events, not
    clipped), in time order."""
    rows = await conn.fetch(_BUSY, sub_account_id, list(user_ids), start, end)
    return [
        BusyInterval(
            user_id=r["user_id"],
            start=r["start"],
            end=r["end"],
            connection_id=r["connection_id"],
            calendar_id=r["calendar_id"],
            event_id=r["event_id"],
            show_as=r["show_as"],
        )
        for r in rows
    ]


async def calendar_freshness(
    conn: Connection, sub_account_id: str, user_ids: Sequence[str]
) -> list[CalendarFreshness]:
    """Each Conflict Calendar of these members' connections (disconnected ones have none) and
    its last reported sync state; ``CalendarFreshness.is_stale`` judges it."""
    rows = await conn.fetch(_FRESHNESS, sub_account_id, list(user_ids))
    return [
        CalendarFreshness(
            user_id=r["user_id"],
            connection_id=r["connection_id"],
            calendar_id=r["calendar_id"],
            connection_status=r["connection_status"],
            status=r["status"],
            subscription=r["subscription"],
            last_synced_at=r["last_synced_at"],
            last_error=r["last_error"],
            changed_at=r["changed_at"],
        )
        for r in rows
    ]


async def member_connection(
    conn: Connection, sub_account_id: str, user_id: str
) -> MemberConnection | None:
    """The member's Outlook connection: a live one before a disconnected one, newest first."""
    r = await conn.fetchrow(_MEMBER_CONNECTION, sub_account_id, user_id)
    if r is None:
        return None
    return MemberConnection(
        connection_id=r["connection_id"],
        sub_account_id=r["sub_account_id"],
        user_id=r["user_id"],
        status=r["status"],
        sync_preference=r["sync_preference"],
        linked_calendar_id=r["linked_calendar_id"],
        conflict_calendar_ids=tuple(r["conflict_calendar_ids"]),
        blocking_show_as=tuple(r["blocking_show_as"]),
        time_zone=r["time_zone"],
        changed_at=r["changed_at"],
    )


async def booking_conflicts(conn: Connection, booking_ids: Sequence[UUID]) -> list[BookingConflict]:
    """Every conflict recorded over these bookings, open and resolved."""
    rows = await conn.fetch(_CONFLICTS, list(booking_ids))
    return [
        BookingConflict(
            booking_id=r["booking_id"],
            connection_id=r["connection_id"],
            calendar_id=r["calendar_id"],
            event_id=r["event_id"],
            show_as=r["show_as"],
            start=r["start"],
            end=r["end"],
            booking_version=r["booking_version"],
            detected_at=r["detected_at"],
            resolved_at=r["resolved_at"],
        )
        for r in rows
    ]
