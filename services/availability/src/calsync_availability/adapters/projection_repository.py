"""SQL of the busy projection's writes (asyncpg, inside the consumer's transaction).

The rules are :mod:`calsync_availability.domain.projection`'s, written here as SQL so that an
event costs one statement in the common case: the ``KEPT`` predicate is ``keeps``, ``BLOCKS`` is
``blocks``, the per-calendar sequence filter is ``applies``.

Conflicts between Outlook time and bookings are found under a per-member transaction-level
advisory lock (:func:`lock_member`, :data:`MEMBER_LOCK`): the booking path takes the same lock
before it reads blocking Outlook time, so of an event and a booking committed concurrently one
always sees the other (a check under READ COMMITTED alone would let both miss each other).

Connections and calendar events are consumed by different groups, so a snapshot that releases a
calendar and a batch writing its events can run at once; each would miss the other's uncommitted
rows and a released event could survive. :meth:`ProjectionRepository.lock_calendar_tables` makes
a connection change wait for the event and status batches in flight and hold new ones back until
it commits (their statements take their snapshots after the lock wait, so they see the change).
Connection changes are rare; event batches never wait on each other for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Range, Record

from calsync_availability.domain.projection import ConnectionView, EventChange, ResyncProgress
from calsync_common.postgres import Connection

#: Every table a connection change must see quiet, in the one order all writers lock them.
_CALENDAR_TABLES = (
    "outlook_events, outlook_calendar_sequences, outlook_calendar_freshness,"
    " outlook_resyncs, outlook_resync_ids"
)

#: The lock key of a member (sub_account_id, user_id); length-prefixed so no two members share it.
MEMBER_KEY = "hashtextextended(length({sub})::text || ':' || {sub} || '/' || {user}, 0)"
MEMBER_LOCK = f"pg_advisory_xact_lock({MEMBER_KEY})"


def _kept(connection: str, calendar: str) -> str:
    """SQL for ``domain.projection.keeps``: not erased, and unknown or syncing the calendar."""
    return f"""
        NOT EXISTS (SELECT 1 FROM outlook_forgotten_connections f
                    WHERE f.connection_id = {connection})
        AND NOT EXISTS (
            SELECT 1 FROM outlook_connections k
            WHERE k.connection_id = {connection}
              AND (k.status = 'disconnected'
                   OR NOT ({calendar} = ANY (k.conflict_calendar_ids)
                           OR coalesce(k.linked_calendar_id = {calendar}, false))))
    """  # noqa: S608 (constants only)


#: SQL for ``domain.projection.blocks`` over an event ``e`` and its connection ``c``.
BLOCKS = """
    c.status <> 'disconnected'
    AND e.calendar_id = ANY (c.conflict_calendar_ids)
    AND e.show_as <> 'free' AND e.show_as = ANY (c.blocking_show_as)
    AND e.booking_id IS NULL
"""

_APPLY_EVENTS = f"""
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::bool[],
                         $6::timestamptz[], $7::timestamptz[], $8::text[], $9::bool[], $10::uuid[])
        AS i(connection_id, calendar_id, event_id, ce_sequence, present,
             starts, ends, show_as, is_all_day, booking_id)
),
fresh AS (
    SELECT i.* FROM input i
    LEFT JOIN outlook_calendar_sequences s USING (connection_id, calendar_id)
    WHERE ({_kept("i.connection_id", "i.calendar_id")})
      AND (i.ce_sequence = 0 OR s.last_sequence IS NULL OR i.ce_sequence > s.last_sequence)
),
advanced AS (
    INSERT INTO outlook_calendar_sequences AS s (connection_id, calendar_id, last_sequence)
    SELECT connection_id, calendar_id, max(ce_sequence) FROM fresh WHERE ce_sequence > 0
    GROUP BY connection_id, calendar_id
    ON CONFLICT (connection_id, calendar_id) DO UPDATE SET last_sequence = EXCLUDED.last_sequence
    WHERE s.last_sequence < EXCLUDED.last_sequence
),
upserted AS (
    INSERT INTO outlook_events AS e (connection_id, calendar_id, event_id, during, show_as,
                                     is_all_day, booking_id, ce_sequence)
    SELECT connection_id, calendar_id, event_id, tstzrange(starts, ends), show_as,
           is_all_day, booking_id, ce_sequence
    FROM fresh WHERE present
    ON CONFLICT (connection_id, calendar_id, event_id) DO UPDATE
    SET during = EXCLUDED.during, show_as = EXCLUDED.show_as, is_all_day = EXCLUDED.is_all_day,
        booking_id = EXCLUDED.booking_id, ce_sequence = EXCLUDED.ce_sequence
),
removed AS (
    DELETE FROM outlook_events e USING fresh f
    WHERE NOT f.present AND e.connection_id = f.connection_id
      AND e.calendar_id = f.calendar_id AND e.event_id = f.event_id
)
-- What may change a conflict: blocking time written (under its member's lock, taken here), or
-- an event that had open conflicts changed or went.
SELECT e.connection_id, e.calendar_id, e.event_id,
       {MEMBER_LOCK.format(sub="c.sub_account_id", user="c.user_id")} IS NULL AS locked
FROM fresh e JOIN outlook_connections c USING (connection_id)
WHERE (e.present AND {BLOCKS})
   OR EXISTS (SELECT 1 FROM booking_conflicts b
              WHERE b.connection_id = e.connection_id AND b.calendar_id = e.calendar_id
                AND b.event_id = e.event_id AND b.resolved_at IS NULL)
"""  # noqa: S608 (constants only)

_ADVANCE = f"""
WITH kept AS (SELECT 1 WHERE {_kept("$1::uuid", "$2::text")})
INSERT INTO outlook_calendar_sequences AS s (connection_id, calendar_id, last_sequence)
SELECT $1, $2, $3 FROM kept
ON CONFLICT (connection_id, calendar_id) DO UPDATE SET last_sequence = EXCLUDED.last_sequence
WHERE s.last_sequence < EXCLUDED.last_sequence
RETURNING true
"""  # noqa: S608 (constants only)

_APPLY_SNAPSHOT = """
INSERT INTO outlook_connections AS c (connection_id, version, sub_account_id, user_id, status,
    sync_preference, linked_calendar_id, conflict_calendar_ids, blocking_show_as, time_zone,
    changed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (connection_id) DO UPDATE
SET version = EXCLUDED.version, sub_account_id = EXCLUDED.sub_account_id,
    user_id = EXCLUDED.user_id, status = EXCLUDED.status,
    sync_preference = EXCLUDED.sync_preference, linked_calendar_id = EXCLUDED.linked_calendar_id,
    conflict_calendar_ids = EXCLUDED.conflict_calendar_ids,
    blocking_show_as = EXCLUDED.blocking_show_as, time_zone = EXCLUDED.time_zone,
    changed_at = EXCLUDED.changed_at
WHERE c.version < EXCLUDED.version
RETURNING true
"""

#: Deletes what a connection's calendars no longer synced held (all of it once it is erased).
_RELEASE = """
WITH unsynced AS (
    SELECT $1::uuid AS connection_id, x.calendar_id
    FROM (SELECT calendar_id FROM outlook_events WHERE connection_id = $1
          UNION SELECT calendar_id FROM outlook_calendar_sequences WHERE connection_id = $1
          UNION SELECT calendar_id FROM outlook_calendar_freshness WHERE connection_id = $1
          UNION SELECT calendar_id FROM outlook_resyncs WHERE connection_id = $1) x
    WHERE NOT (x.calendar_id = ANY ($2::text[]))
),
events AS (DELETE FROM outlook_events t USING unsynced u
           WHERE t.connection_id = u.connection_id AND t.calendar_id = u.calendar_id),
sequences AS (DELETE FROM outlook_calendar_sequences t USING unsynced u
              WHERE t.connection_id = u.connection_id AND t.calendar_id = u.calendar_id),
freshness AS (DELETE FROM outlook_calendar_freshness t USING unsynced u
              WHERE t.connection_id = u.connection_id AND t.calendar_id = u.calendar_id),
resync_ids AS (DELETE FROM outlook_resync_ids t USING unsynced u
               WHERE t.connection_id = u.connection_id AND t.calendar_id = u.calendar_id)
DELETE FROM outlook_resyncs t USING unsynced u
WHERE t.connection_id = u.connection_id AND t.calendar_id = u.calendar_id
"""

_RECONCILE = f"""
WITH scope AS ({{scope}}),
overlapping AS (
    SELECT b.booking_id, e.connection_id, e.calendar_id, e.event_id, e.show_as,
           b.during * e.during AS during, b.version AS booking_version
    FROM scope s
    JOIN outlook_events e USING (connection_id, calendar_id, event_id)
    JOIN outlook_connections c ON c.connection_id = e.connection_id
    JOIN bookings b ON b.sub_account_id = c.sub_account_id AND b.user_id = c.user_id
                   AND b.status = 'confirmed' AND b.during && e.during
    WHERE {BLOCKS}
),
before AS (
    SELECT bc.booking_id, bc.connection_id, bc.calendar_id, bc.event_id, bc.resolved_at
    FROM booking_conflicts bc JOIN scope s USING (connection_id, calendar_id, event_id)
),
opened AS (
    INSERT INTO booking_conflicts AS bc (booking_id, connection_id, calendar_id, event_id,
                                         show_as, during, booking_version, detected_at)
    SELECT o.booking_id, o.connection_id, o.calendar_id, o.event_id, o.show_as, o.during,
           o.booking_version, $1
    FROM overlapping o
    ON CONFLICT (booking_id, connection_id, calendar_id, event_id) DO UPDATE
    SET show_as = EXCLUDED.show_as, during = EXCLUDED.during,
        booking_version = EXCLUDED.booking_version,
        detected_at = CASE WHEN bc.resolved_at IS NULL THEN bc.detected_at
                           ELSE EXCLUDED.detected_at END,
        resolved_at = NULL
    RETURNING bc.booking_id, bc.connection_id, bc.calendar_id, bc.event_id, bc.show_as,
              bc.during
),
resolved AS (
    UPDATE booking_conflicts bc SET resolved_at = $1
    FROM before p
    WHERE p.resolved_at IS NULL AND bc.booking_id = p.booking_id
      AND bc.connection_id = p.connection_id AND bc.calendar_id = p.calendar_id
      AND bc.event_id = p.event_id
      AND NOT EXISTS (SELECT 1 FROM overlapping o
                      WHERE o.booking_id = p.booking_id AND o.connection_id = p.connection_id
                        AND o.calendar_id = p.calendar_id AND o.event_id = p.event_id)
)
-- Conflicts that were not open before: new, or back after being resolved.
SELECT o.booking_id, o.connection_id, o.calendar_id, o.event_id, o.show_as,
       lower(o.during) AS start, upper(o.during) AS "end", b.sub_account_id, b.user_id,
       b.booking_calendar_id, b.version, lower(b.during) AS booking_start,
       upper(b.during) AS booking_end
FROM opened o JOIN bookings b USING (booking_id)
WHERE NOT EXISTS (SELECT 1 FROM before p
                  WHERE p.booking_id = o.booking_id AND p.connection_id = o.connection_id
                    AND p.calendar_id = o.calendar_id AND p.event_id = o.event_id
                    AND p.resolved_at IS NULL)
ORDER BY o.booking_id, o.connection_id, o.calendar_id, o.event_id
"""  # noqa: S608 (constants only)

_EVENT_SCOPE = (
    "SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[])"
    " AS s(connection_id, calendar_id, event_id)"
)
_CONNECTION_SCOPE = (
    "SELECT connection_id, calendar_id, event_id FROM outlook_events WHERE connection_id = $2"
    " UNION SELECT connection_id, calendar_id, event_id FROM booking_conflicts"
    " WHERE connection_id = $2 AND resolved_at IS NULL"
)


@dataclass(frozen=True)
class NewConflict:
    """A conflict opened by a reconcile, with what its event needs of the booking."""

    booking_id: UUID
    booking_version: int
    sub_account_id: str
    user_id: str
    booking_calendar_id: str
    booking_start: datetime
    booking_end: datetime
    connection_id: UUID
    calendar_id: str
    event_id: str
    show_as: str
    start: datetime
    end: datetime


EventKey = tuple[UUID, str, str]


async def lock_member(conn: Connection, sub_account_id: str, user_id: str) -> None:
    """Take the member's conflict lock until the transaction ends (the booking path calls this
    before it reads blocking Outlook time)."""
    await conn.execute(
        f"SELECT {MEMBER_LOCK.format(sub='$1::text', user='$2::text')}", sub_account_id, user_id
    )


class ProjectionRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # -- connections --------------------------------------------------------------------------

    async def apply_snapshot(self, view: ConnectionView) -> bool:
        """Store the snapshot unless one as new is stored; whether it was stored."""
        applied = await self._conn.fetchval(
            _APPLY_SNAPSHOT,
            view.connection_id,
            view.version,
            view.sub_account_id,
            view.user_id,
            view.status,
            view.sync_preference,
            view.linked_calendar_id,
            list(view.conflict_calendar_ids),
            list(view.blocking_show_as),
            view.time_zone,
            view.changed_at,
        )
        if applied:
            await self._conn.execute(
                "DELETE FROM outlook_forgotten_connections WHERE connection_id = $1",
                view.connection_id,
            )
        return bool(applied)

    async def lock_calendar_tables(self) -> None:
        """Before a connection change: no event or status write runs concurrently with it."""
        await self._conn.execute(f"LOCK TABLE {_CALENDAR_TABLES} IN SHARE ROW EXCLUSIVE MODE")

    async def enter_calendar_tables(self) -> None:
        """Before an event or status write: the tables' write locks in the order a connection
        change takes them. A statement locks the tables it names in its own order; without
        this, a batch holding one table and waiting for another could deadlock with a
        connection change holding the second and waiting for the first. Writers never block
        each other with these (ROW EXCLUSIVE)."""
        await self._conn.execute(f"LOCK TABLE {_CALENDAR_TABLES} IN ROW EXCLUSIVE MODE")

    async def release_unsynced(self, connection_id: UUID, synced: frozenset[str]) -> None:
        await self._conn.execute(_RELEASE, connection_id, sorted(synced))

    async def forget_connection(self, connection_id: UUID) -> tuple[str, str] | None:
        """Erase the connection and all that came from it; its member, if it was known."""
        member = await self._conn.fetchrow(
            "DELETE FROM outlook_connections WHERE connection_id = $1"
            " RETURNING sub_account_id, user_id",
            connection_id,
        )
        await self.release_unsynced(connection_id, frozenset())
        await self._conn.execute(
            "INSERT INTO outlook_forgotten_connections (connection_id) VALUES ($1)"
            " ON CONFLICT DO NOTHING",
            connection_id,
        )
        return None if member is None else (member["sub_account_id"], member["user_id"])

    async def lock_member(self, sub_account_id: str, user_id: str) -> None:
        await lock_member(self._conn, sub_account_id, user_id)

    async def lock_member_of(self, connection_id: UUID) -> None:
        member = MEMBER_LOCK.format(sub="sub_account_id", user="user_id")
        await self._conn.execute(
            f"SELECT {member} FROM outlook_connections WHERE connection_id = $1",  # noqa: S608
            connection_id,
        )

    # -- calendar events ----------------------------------------------------------------------

    async def apply_event_changes(self, changes: Sequence[EventChange]) -> list[EventKey]:
        """Apply the last change of each event (``latest_per_event``: one per key); the events
        whose conflicts may have changed (their members are locked now)."""
        rows = await self._conn.fetch(
            _APPLY_EVENTS,
            [c.connection_id for c in changes],
            [c.calendar_id for c in changes],
            [c.event_id for c in changes],
            [c.sequence for c in changes],
            [c.present for c in changes],
            [c.start for c in changes],
            [c.end for c in changes],
            [c.show_as for c in changes],
            [c.is_all_day for c in changes],
            [c.booking_id for c in changes],
        )
        return [(r["connection_id"], r["calendar_id"], r["event_id"]) for r in rows]

    async def advance(self, connection_id: UUID, calendar_id: str, sequence: int) -> bool:
        """Record a calendar's record as applied; False when the calendar is not kept or the
        record is not newer than its newest (then it changes nothing)."""
        if sequence == 0:
            kept = await self._conn.fetchval(
                f"SELECT {_kept('$1::uuid', '$2::text')}", connection_id, calendar_id
            )
            return bool(kept)
        return bool(await self._conn.fetchval(_ADVANCE, connection_id, calendar_id, sequence))

    # -- resyncs ------------------------------------------------------------------------------

    async def start_resync(
        self,
        connection_id: UUID,
        calendar_id: str,
        resync_id: UUID,
        window: tuple[datetime, datetime],
    ) -> None:
        await self._clear_resync(connection_id, calendar_id)
        await self._conn.execute(
            "INSERT INTO outlook_resyncs (connection_id, calendar_id, resync_id, time_window,"
            " next_page, listed, broken) VALUES ($1, $2, $3, $4, 0, 0, false)",
            connection_id,
            calendar_id,
            resync_id,
            Range(window[0], window[1]),
        )

    async def resync_progress(self, connection_id: UUID, calendar_id: str) -> ResyncProgress | None:
        row = await self._conn.fetchrow(
            "SELECT resync_id, next_page, listed, broken FROM outlook_resyncs"
            " WHERE connection_id = $1 AND calendar_id = $2",
            connection_id,
            calendar_id,
        )
        if row is None:
            return None
        return ResyncProgress(row["resync_id"], row["next_page"], row["listed"], row["broken"])

    async def record_page(
        self,
        connection_id: UUID,
        calendar_id: str,
        progress: ResyncProgress,
        event_ids: Sequence[str],
    ) -> None:
        await self._conn.execute(
            "UPDATE outlook_resyncs SET next_page = $3, listed = $4, broken = $5"
            " WHERE connection_id = $1 AND calendar_id = $2",
            connection_id,
            calendar_id,
            progress.next_page,
            progress.listed,
            progress.broken,
        )
        if not progress.broken:
            await self._conn.execute(
                "INSERT INTO outlook_resync_ids (connection_id, calendar_id, event_id)"
                " SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING",
                connection_id,
                calendar_id,
                list(event_ids),
            )

    async def remove_unlisted(self, connection_id: UUID, calendar_id: str) -> list[EventKey]:
        """Delete the calendar's events in the resync's window that no page listed."""
        rows = await self._conn.fetch(
            "DELETE FROM outlook_events e USING outlook_resyncs r"
            " WHERE r.connection_id = $1 AND r.calendar_id = $2"
            "   AND e.connection_id = $1 AND e.calendar_id = $2"
            "   AND (e.during && r.time_window OR isempty(e.during))"
            "   AND NOT EXISTS (SELECT 1 FROM outlook_resync_ids i WHERE i.connection_id = $1"
            "                   AND i.calendar_id = $2 AND i.event_id = e.event_id)"
            " RETURNING e.event_id",
            connection_id,
            calendar_id,
        )
        return [(connection_id, calendar_id, r["event_id"]) for r in rows]

    async def end_resync(self, connection_id: UUID, calendar_id: str) -> None:
        await self._clear_resync(connection_id, calendar_id)

    async def _clear_resync(self, connection_id: UUID, calendar_id: str) -> None:
        await self._conn.execute(
            "WITH ids AS (DELETE FROM outlook_resync_ids WHERE connection_id = $1"
            " AND calendar_id = $2)"
            " DELETE FROM outlook_resyncs WHERE connection_id = $1 AND calendar_id = $2",
            connection_id,
            calendar_id,
        )

    # -- freshness ----------------------------------------------------------------------------

    async def apply_freshness(
        self,
        connection_id: UUID,
        calendar_id: str,
        status: str,
        subscription: str,
        last_synced_at: datetime | None,
        last_error: str | None,
        changed_at: datetime,
    ) -> None:
        """Keep the newest status of a kept calendar (a tie goes to the later record)."""
        await self._conn.execute(
            "INSERT INTO outlook_calendar_freshness AS f (connection_id, calendar_id, status,"
            " subscription, last_synced_at, last_error, changed_at)"
            f" SELECT $1, $2, $3, $4, $5, $6, $7 WHERE {_kept('$1::uuid', '$2::text')}"
            " ON CONFLICT (connection_id, calendar_id) DO UPDATE"
            " SET status = EXCLUDED.status, subscription = EXCLUDED.subscription,"
            " last_synced_at = EXCLUDED.last_synced_at, last_error = EXCLUDED.last_error,"
            " changed_at = EXCLUDED.changed_at"
            " WHERE f.changed_at <= EXCLUDED.changed_at",
            connection_id,
            calendar_id,
            status,
            subscription,
            last_synced_at,
            last_error,
            changed_at,
        )

    async def forget_freshness(self, connection_id: UUID, calendar_id: str) -> None:
        await self._conn.execute(
            "DELETE FROM outlook_calendar_freshness WHERE connection_id = $1 AND calendar_id = $2",
            connection_id,
            calendar_id,
        )

    # -- conflicts ----------------------------------------------------------------------------

    async def reconcile_events(self, keys: Sequence[EventKey], at: datetime) -> list[NewConflict]:
        """Open the conflicts these events now make, resolve those they no longer make (their
        members must be locked); the conflicts that were not open before."""
        if not keys:
            return []
        rows = await self._conn.fetch(
            _RECONCILE.format(scope=_EVENT_SCOPE),
            at,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
        )
        return [_new_conflict(r) for r in rows]

    async def reconcile_connection(self, connection_id: UUID, at: datetime) -> list[NewConflict]:
        """:meth:`reconcile_events` over every event of a connection (settings changed)."""
        rows = await self._conn.fetch(_RECONCILE.format(scope=_CONNECTION_SCOPE), at, connection_id)
        return [_new_conflict(r) for r in rows]


def _new_conflict(r: Record) -> NewConflict:
    return NewConflict(
        booking_id=r["booking_id"],
        booking_version=r["version"],
        sub_account_id=r["sub_account_id"],
        user_id=r["user_id"],
        booking_calendar_id=r["booking_calendar_id"],
        booking_start=r["booking_start"],
        booking_end=r["booking_end"],
        connection_id=r["connection_id"],
        calendar_id=r["calendar_id"],
        event_id=r["event_id"],
        show_as=r["show_as"],
        start=r["start"],
        end=r["end"],
    )
