"""Busy time in one statement (one round trip and one span instead of two or three) for the
hottest paths: ``GET .../users/{user_id}/busy`` (:func:`member_busy`), the booking check
(:func:`members_window`) and free slots (:func:`members_busy_spans`).

A statement is the ``UNION ALL`` of up to three parts, each keeping the predicates of the query it
stands for: blocking Outlook time is ``busy_queries.outlook_busy``'s (``BLOCKS``, and the partial
GiST index's own predicate ``show_as <> 'free' AND booking_id IS NULL``, which it needs to use
that index), confirmed bookings are ``bookings_repository.confirmed_busy``'s, Conflict Calendars'
freshness is ``busy_queries.calendar_freshness``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Record

from calsync_availability.adapters.projection_repository import BLOCKS
from calsync_availability.domain.bookings import BusyInterval
from calsync_availability.domain.projection import CalendarFreshness
from calsync_availability.domain.slots import Busy
from calsync_common.postgres import Connection

_OUTLOOK = f"""
SELECT 'outlook', c.user_id, lower(e.during), upper(e.during), e.connection_id, e.calendar_id,
       e.event_id, e.show_as, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM outlook_connections c
JOIN outlook_events e ON e.connection_id = c.connection_id
WHERE c.sub_account_id = $1 AND c.user_id = ANY ($2::text[])
  AND e.show_as <> 'free' AND e.booking_id IS NULL
  AND e.during && tstzrange($3, $4)
  AND {BLOCKS}
"""  # noqa: S608 (constants only)
_BOOKINGS = """
SELECT 'booking' AS kind, b.user_id, lower(b.during) AS start, upper(b.during) AS "end",
       NULL::uuid AS connection_id, NULL::text AS calendar_id, NULL::text AS event_id,
       NULL::text AS show_as, b.group_id AS booking_id, NULL::text AS connection_status,
       NULL::text AS status, NULL::text AS subscription, NULL::timestamptz AS last_synced_at,
       NULL::text AS last_error, NULL::timestamptz AS changed_at,
       NULL::integer AS calendar_version
FROM bookings b
WHERE b.sub_account_id = $1 AND b.user_id = ANY ($2::text[]) AND b.status = 'confirmed'
  AND b.during && tstzrange($3, $4)
"""
_FRESHNESS = """
SELECT 'calendar', c.user_id, NULL, NULL, c.connection_id, cal.calendar_id, NULL, NULL, NULL,
       c.status, f.status, f.subscription, f.last_synced_at, f.last_error, f.changed_at, NULL
FROM outlook_connections c
CROSS JOIN LATERAL unnest(c.conflict_calendar_ids) AS cal(calendar_id)
LEFT JOIN LATERAL (  -- by primary key; LIMIT keeps it a lookup, not a hash of the table
    SELECT * FROM outlook_calendar_freshness f
    WHERE f.connection_id = c.connection_id AND f.calendar_id = cal.calendar_id LIMIT 1
) f ON true
WHERE c.sub_account_id = $1 AND c.user_id = ANY ($2::text[]) AND c.status <> 'disconnected'
"""
#: The booking calendar's stored version, read in the same snapshot as the time: a calendar the
#: caller planned with (perhaps from ``calendar_cache``) is the stored one only if they agree.
_CALENDAR_VERSION = """
SELECT 'calendar_version', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, k.version
FROM booking_calendars k WHERE k.calendar_id = $5 AND k.sub_account_id = $1
"""
#: (outlook, freshness, calendar version) → the statement. The bookings part is always there
#: and first: it names and types the columns, and types $3 and $4.
_STATEMENTS = {
    (outlook, freshness, version): " UNION ALL ".join(
        part
        for part, wanted in (
            (_BOOKINGS, True),
            (_OUTLOOK, outlook),
            (_FRESHNESS, freshness),
            (_CALENDAR_VERSION, version),
        )
        if wanted
    )
    for outlook in (False, True)
    for freshness in (False, True)
    for version in (False, True)
}


@dataclass(frozen=True)
class Window:
    #: Confirmed bookings and (when asked) blocking Outlook time, whole intervals, unordered.
    busy: list[BusyInterval]
    #: (When asked) the Conflict Calendars of the members' live connections.
    calendars: list[CalendarFreshness]
    #: (When asked) the booking calendar's stored version; None when it is gone.
    calendar_version: int | None = None


async def members_window(
    conn: Connection,
    sub_account_id: str,
    user_ids: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    outlook: bool,
    freshness: bool,
    calendar_id: UUID | None = None,
) -> Window:
    """What is known of the members over ``[start, end)``, in one round trip; with
    ``calendar_id``, that booking calendar's stored version too."""
    rows = await _fetch(conn, sub_account_id, user_ids, start, end, outlook, freshness, calendar_id)
    times, calendars, version = _split(rows)
    busy = [
        BusyInterval(
            r["user_id"], r["start"], r["end"], r["kind"],
            booking_id=r["booking_id"], connection_id=r["connection_id"],
            calendar_id=r["calendar_id"], event_id=r["event_id"], show_as=r["show_as"],
        )
        for r in times
    ]  # fmt: skip
    return Window(busy, calendars, version)


@dataclass(frozen=True)
class Spans:
    """:class:`Window` as the slot computation takes it."""

    #: Busy time per member: times and whether from Outlook.
    busy: dict[str, list[Busy]]
    calendars: list[CalendarFreshness]
    calendar_version: int | None = None


async def members_busy_spans(
    conn: Connection,
    sub_account_id: str,
    user_ids: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    outlook: bool,
    freshness: bool,
    calendar_id: UUID | None = None,
) -> Spans:
    """:func:`members_window` for free slots: busy time as the slot computation takes it
    (times and whether from Outlook, per member), without building each interval's details."""
    rows = await _fetch(conn, sub_account_id, user_ids, start, end, outlook, freshness, calendar_id)
    times, calendars, version = _split(rows)
    busy: dict[str, list[Busy]] = {u: [] for u in user_ids}
    for r in times:
        kind, user_id, begins, ends = r[0], r[1], r[2], r[3]
        busy.setdefault(user_id, []).append(Busy(begins, ends, kind == "outlook"))
    return Spans(busy, calendars, version)


async def _fetch(
    conn: Connection,
    sub_account_id: str,
    user_ids: Sequence[str],
    start: datetime,
    end: datetime,
    outlook: bool,
    freshness: bool,
    calendar_id: UUID | None,
) -> list[Record]:
    args: list[object] = [sub_account_id, list(user_ids), start, end]
    if calendar_id is not None:
        args.append(calendar_id)
    return await conn.fetch(_STATEMENTS[(outlook, freshness, calendar_id is not None)], *args)


def _split(rows: list[Record]) -> tuple[list[Record], list[CalendarFreshness], int | None]:
    """The statement's rows apart: busy time (bookings, Outlook), the Conflict Calendars'
    freshness, and the booking calendar's stored version (None when not asked or gone)."""
    times: list[Record] = []
    calendars: list[CalendarFreshness] = []
    version: int | None = None
    for r in rows:
        kind = r[0]
        if kind == "calendar":
            calendars.append(_freshness(r))
        elif kind == "calendar_version":
            version = r["calendar_version"]
        else:
            times.append(r)
    return times, calendars, version


def _freshness(r: Record) -> CalendarFreshness:
    return CalendarFreshness(
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


async def member_busy(
    conn: Connection, sub_account_id: str, user_id: str, start: datetime, end: datetime
) -> Window:
    """A member's busy time in time order (bookings first on a tie, Outlook events by source
    ids) and Conflict Calendars by connection and calendar, as the busy endpoint shows them."""
    found = await members_window(
        conn, sub_account_id, [user_id], start, end, outlook=True, freshness=True
    )
    busy = sorted(
        found.busy,
        key=lambda b: (b.start, b.end, b.source, str(b.connection_id), b.calendar_id, b.event_id),
    )
    calendars = sorted(found.calendars, key=lambda f: (str(f.connection_id), f.calendar_id))
    return Window(busy, calendars)
