"""SQL of the booking write path: holds, member locks, idempotency keys, write-backs, conflicts.

Every function takes the connection of an open transaction (``work.connection``).

Member locks: :func:`lock_members` takes the busy projection's member lock
(``pg_advisory_xact_lock``) on each member, in key order, before the availability check; see
``service_layer/bookings.py`` for why.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from calsync_availability.adapters.projection_repository import MEMBER_KEY
from calsync_availability.domain.bookings import (
    Booking,
    BusyInterval,
    Conflict,
    Hold,
    WriteBack,
)
from calsync_common.postgres import Connection

# The projection's member lock (``projection_repository.MEMBER_KEY``): the one point where a
# booking and blocking Outlook time of the same member meet. Keys are locked in ascending order
# (the subquery's ORDER BY feeds the outer scan in that order), so two bookings locking
# overlapping sets of members never wait on each other in a cycle.
_LOCK_MEMBERS = (
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT "  # noqa: S608 (constants only)
    + MEMBER_KEY.format(sub="$1::text", user="u")
    + " AS k FROM unnest($2::text[]) AS u ORDER BY k) AS keys"
)
# The same, after holding the booking calendar against deletion (FOR KEY SHARE, which an update
# of its fields does not wait for), in the same round trip.
_LOCK_CALENDAR_AND_MEMBERS = (
    "WITH calendar AS (SELECT 1 FROM booking_calendars"  # noqa: S608 (constants only)
    " WHERE calendar_id = $3 AND sub_account_id = $1 FOR KEY SHARE)"
    " SELECT (SELECT count(*) FROM calendar), count(*) FROM (" + _LOCK_MEMBERS + ") AS locked"
)


async def lock_members(
    conn: Connection,
    sub_account_id: str,
    user_ids: Iterable[str],
    *,
    calendar_id: UUID | None = None,
) -> None:
    """Exclusive transaction-level locks on the members (see :data:`_LOCK_MEMBERS`); with
    ``calendar_id``, that booking calendar held against deletion first, in the same statement
    (whether it is still there is for the caller's read of its version to tell)."""
    members = sorted(set(user_ids))
    if calendar_id is None:
        await conn.execute(_LOCK_MEMBERS, sub_account_id, members)
    else:
        await conn.execute(_LOCK_CALENDAR_AND_MEMBERS, sub_account_id, members, calendar_id)


# --- holds -----------------------------------------------------------------------------------

_GROUP = (
    "SELECT booking_id, sub_account_id, booking_calendar_id, user_id, lower(during) AS start,"
    " upper(during) AS end_, status, version, title, created_at, updated_at, group_id,"
    " changed_by, outlook_change FROM bookings WHERE sub_account_id = $1 AND group_id = $2"
    " ORDER BY user_id"
)
_GROUP_FOR_UPDATE = _GROUP + " FOR UPDATE"


async def confirmed_busy(
    conn: Connection, sub_account_id: str, user_ids: Sequence[str], start: datetime, end: datetime
) -> list[BusyInterval]:
    """The members' confirmed bookings overlapping ``[start, end)`` (the exclusion index)."""
    rows = await conn.fetch(
        "SELECT user_id, booking_id, group_id, lower(during) AS s, upper(during) AS e"
        " FROM bookings WHERE sub_account_id = $1 AND user_id = ANY($2::text[])"
        " AND status = 'confirmed' AND during && tstzrange($3, $4)",
        sub_account_id,
        list(user_ids),
        start,
        end,
    )
    return [
        BusyInterval(r["user_id"], r["s"], r["e"], "booking", booking_id=r["group_id"])
        for r in rows
    ]


async def last_assigned(conn: Connection, sub_account_id: str, calendar_id: str) -> str | None:
    """The member the calendar's latest booking went to (round robin rotates after them)."""
    value = await conn.fetchval(
        "SELECT user_id FROM bookings WHERE sub_account_id = $1 AND booking_calendar_id = $2"
        " ORDER BY created_at DESC, booking_id DESC LIMIT 1",
        sub_account_id,
        calendar_id,
    )
    return str(value) if value is not None else None


@dataclass(frozen=True)
class NewHold:
    booking_id: UUID
    user_id: str


@dataclass(frozen=True)
class KeyAnswer:
    """The answer to store under an Idempotency-Key this transaction claimed."""

    key: str
    status: int
    body: bytes


_INSERT_HOLDS = (
    "INSERT INTO bookings (booking_id, sub_account_id, booking_calendar_id, user_id, during,"
    " status, version, title, created_at, updated_at, group_id)"
    " SELECT h.id, $1, $2, h.user_id, tstzrange($5, $6), 'confirmed', 1, $7, $8, $8, $9"
    " FROM unnest($3::uuid[], $4::text[]) AS h(id, user_id)"
)
_INSERT_HOLDS_AND_ANSWER = (
    f"WITH holds AS ({_INSERT_HOLDS}) UPDATE idempotency_keys"  # noqa: S608 (constants only)
    " SET response_status = $11, response_body = $12 WHERE sub_account_id = $1 AND key = $10"
)


async def insert_holds(
    conn: Connection,
    sub_account_id: str,
    calendar_id: str,
    group_id: UUID,
    holds: Sequence[NewHold],
    start: datetime,
    end: datetime,
    title: str,
    now: datetime,
    *,
    answer: KeyAnswer | None = None,
) -> None:
    """Insert confirmed holds at version 1 (23P01 when the constraint finds an overlap) and,
    in the same statement, store ``answer`` under its key (one round trip under the locks)."""
    args = (
        sub_account_id,
        calendar_id,
        [h.booking_id for h in holds],
        [h.user_id for h in holds],
        start,
        end,
        title,
        now,
        group_id,
    )
    if answer is None:
        await conn.execute(_INSERT_HOLDS, *args)
    else:
        await conn.execute(_INSERT_HOLDS_AND_ANSWER, *args, answer.key, answer.status, answer.body)


async def load_group(
    conn: Connection, sub_account_id: str, group_id: UUID, *, lock: bool = False
) -> Booking | None:
    """The booking (all its holds); ``lock`` takes their rows ``FOR UPDATE``."""
    rows = await conn.fetch(_GROUP_FOR_UPDATE if lock else _GROUP, sub_account_id, group_id)
    return _booking(rows) if rows else None


async def group_of_hold(conn: Connection, booking_id: UUID) -> tuple[str, UUID] | None:
    """(sub_account_id, group_id) of the booking that holds ``booking_id``."""
    row = await conn.fetchrow(
        "SELECT sub_account_id, group_id FROM bookings WHERE booking_id = $1", booking_id
    )
    return (row["sub_account_id"], row["group_id"]) if row else None


async def update_group(
    conn: Connection,
    booking: Booking,
    *,
    start: datetime,
    end: datetime,
    status: str,
    version: int,
    changed_by: str,
    now: datetime,
    outlook_change: dict[str, Any] | None = None,
) -> None:
    """Move or cancel every hold of the booking to ``version`` (23P01 on an overlap)."""
    await conn.execute(
        "UPDATE bookings SET during = tstzrange($3, $4), status = $5, version = $6,"
        " changed_by = $7, updated_at = $8,"
        " outlook_change = CASE WHEN $10::jsonb IS NULL THEN outlook_change ELSE $10 END"
        " WHERE sub_account_id = $1 AND group_id = $2 AND booking_id = ANY($9::uuid[])",
        booking.sub_account_id,
        booking.group_id,
        start,
        end,
        status,
        version,
        changed_by,
        now,
        [h.booking_id for h in booking.holds],
        json.dumps(outlook_change) if outlook_change is not None else None,
    )


async def note_outlook_change(
    conn: Connection, booking: Booking, outlook_change: dict[str, Any]
) -> None:
    """Remember what became of a change made in Outlook, without changing the booking."""
    await conn.execute(
        "UPDATE bookings SET outlook_change = $3::jsonb"
        " WHERE sub_account_id = $1 AND group_id = $2",
        booking.sub_account_id,
        booking.group_id,
        json.dumps(outlook_change),
    )


def _booking(rows: Sequence[asyncpg.Record]) -> Booking:
    first = rows[0]
    change = first["outlook_change"]
    return Booking(
        group_id=first["group_id"],
        sub_account_id=first["sub_account_id"],
        booking_calendar_id=first["booking_calendar_id"],
        start=first["start"],
        end=first["end_"],
        title=first["title"],
        status=first["status"],
        version=max(r["version"] for r in rows),
        changed_by=first["changed_by"],
        created_at=first["created_at"],
        updated_at=max(r["updated_at"] for r in rows),
        holds=tuple(Hold(r["booking_id"], r["user_id"], r["version"], r["status"]) for r in rows),
        outlook_change=json.loads(change) if isinstance(change, str) else change,
    )


# --- idempotency keys ------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredAnswer:
    request_hash: bytes
    status: int
    body: bytes


async def claim_key(
    conn: Connection, sub_account_id: str, key: str, request_hash: bytes, retention_s: float
) -> StoredAnswer | None:
    """Claim ``key`` for this transaction, or the answer stored under it.

    None: the key is ours now (new, or its old answer expired); answer and
    :func:`store_answer` in this transaction. A concurrent request with the same key waits on
    the row until this transaction ends, then reads what it stored.
    """
    claimed = await _take_key(conn, sub_account_id, key, request_hash, retention_s, None, None)
    if claimed:
        return None
    row = await conn.fetchrow(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys"
        " WHERE sub_account_id = $1 AND key = $2",
        sub_account_id,
        key,
    )
    if row is None or row["response_status"] is None:  # released meanwhile: never stored
        raise asyncpg.exceptions.SerializationError("idempotency key released; retry")
    return StoredAnswer(bytes(row["request_hash"]), row["response_status"], row["response_body"])


async def store_first_answer(
    conn: Connection,
    sub_account_id: str,
    key: str,
    request_hash: bytes,
    retention_s: float,
    status: int,
    body: bytes,
) -> bool:
    """Claim ``key`` and store its answer in one statement (no transaction around it): True
    when stored; False when the key is held (an answer stored, or a request with that key in
    flight: the statement waits for it first), whose answer :func:`claim_key` then reads."""
    return await _take_key(conn, sub_account_id, key, request_hash, retention_s, status, body)


async def _take_key(
    conn: Connection,
    sub_account_id: str,
    key: str,
    request_hash: bytes,
    retention_s: float,
    status: int | None,
    body: bytes | None,
) -> bool:
    """Insert the key (with its answer, or none yet), or take it over when its answer is
    older than the retention; whether it is ours. A key held by a transaction in flight is
    waited for first."""
    taken = await conn.fetchval(
        "INSERT INTO idempotency_keys AS k (sub_account_id, key, request_hash, created_at,"
        " response_status, response_body) VALUES ($1, $2, $3, now(), $5, $6)"
        " ON CONFLICT (sub_account_id, key) DO UPDATE"
        " SET request_hash = EXCLUDED.request_hash, response_status = EXCLUDED.response_status,"
        "     response_body = EXCLUDED.response_body, created_at = now()"
        " WHERE k.created_at < now() - make_interval(secs => $4)"
        " RETURNING true",
        sub_account_id,
        key,
        request_hash,
        retention_s,
        status,
        body,
    )
    return bool(taken)


async def store_answer(
    conn: Connection, sub_account_id: str, key: str, status: int, body: bytes
) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4"
        " WHERE sub_account_id = $1 AND key = $2",
        sub_account_id,
        key,
        status,
        body,
    )


async def sweep_keys(conn: Connection, retention_s: float, limit: int) -> int:
    """Delete up to ``limit`` keys older than the retention; how many went."""
    result = await conn.execute(
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys"
        " WHERE created_at < now() - make_interval(secs => $1) LIMIT $2))",
        retention_s,
        limit,
    )
    return int(result.split()[-1])


# --- write-back outcomes and conflicts -------------------------------------------------------


async def record_writeback(conn: Connection, wb: WriteBack) -> bool:
    """Keep ``wb`` as its version's outcome unless a later one is stored; whether it was kept."""
    kept = await conn.fetchval(
        "INSERT INTO booking_writebacks AS w (booking_id, booking_version, outcome, reason,"
        " will_retry, connection_id, calendar_id, event_id, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (booking_id, booking_version) DO UPDATE SET outcome = EXCLUDED.outcome,"
        " reason = EXCLUDED.reason, will_retry = EXCLUDED.will_retry,"
        " connection_id = EXCLUDED.connection_id, calendar_id = EXCLUDED.calendar_id,"
        " event_id = EXCLUDED.event_id, occurred_at = EXCLUDED.occurred_at, recorded_at = now()"
        " WHERE EXCLUDED.occurred_at >= w.occurred_at RETURNING true",
        wb.booking_id,
        wb.booking_version,
        wb.outcome,
        wb.reason,
        wb.will_retry,
        wb.connection_id,
        wb.calendar_id,
        wb.event_id,
        wb.occurred_at,
    )
    return bool(kept)


async def latest_writebacks(conn: Connection, booking_ids: Sequence[UUID]) -> dict[UUID, WriteBack]:
    """The outcome of the highest version reported, per hold."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (booking_id) booking_id, booking_version, outcome, reason,"
        " will_retry, occurred_at, event_id, connection_id, calendar_id FROM booking_writebacks"
        " WHERE booking_id = ANY($1::uuid[]) ORDER BY booking_id, booking_version DESC",
        list(booking_ids),
    )
    return {
        r["booking_id"]: WriteBack(
            r["booking_id"],
            r["booking_version"],
            r["outcome"],
            r["reason"],
            r["will_retry"],
            r["occurred_at"],
            r["event_id"],
            r["connection_id"],
            r["calendar_id"],
        )
        for r in rows
    }


async def record_conflict(conn: Connection, conflict: Conflict) -> bool:
    """Record blocking Outlook time over a hold (``start``/``end``: the overlap); False when
    that event was already recorded open over it (its times are refreshed; a resolved one
    opens again)."""
    key = (conflict.booking_id, conflict.connection_id, conflict.calendar_id, conflict.event_id)
    before = await conn.fetchrow(
        "SELECT resolved_at FROM booking_conflicts WHERE booking_id = $1 AND connection_id = $2"
        " AND calendar_id = $3 AND event_id = $4 FOR UPDATE",
        *key,
    )
    await conn.execute(
        "INSERT INTO booking_conflicts AS c (booking_id, connection_id, calendar_id, event_id,"
        " show_as, during, booking_version, detected_at)"
        " VALUES ($1, $2, $3, $4, $5, tstzrange($6, $7), $8, $9)"
        " ON CONFLICT (booking_id, connection_id, calendar_id, event_id) DO UPDATE"
        " SET show_as = EXCLUDED.show_as, during = EXCLUDED.during,"
        " booking_version = EXCLUDED.booking_version, resolved_at = NULL,"
        " detected_at = CASE WHEN c.resolved_at IS NULL THEN c.detected_at"
        "   ELSE EXCLUDED.detected_at END",
        *key,
        conflict.show_as,
        conflict.start,
        conflict.end,
        conflict.booking_version,
        conflict.detected_at,
    )
    return before is None or before["resolved_at"] is not None


async def resolve_conflicts(conn: Connection, booking_ids: Sequence[UUID], at: datetime) -> None:
    """Close the open conflicts of these holds (the booking moved or was cancelled)."""
    await conn.execute(
        "UPDATE booking_conflicts SET resolved_at = $2"
        " WHERE booking_id = ANY($1::uuid[]) AND resolved_at IS NULL",
        list(booking_ids),
        at,
    )
