"""SQL of the write-back: bookings' wanted state, the events that hold them, the leased work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from calsync_common.contracts.bookings import (
    BookingCancelled,
    BookingConfirmed,
    BookingRescheduled,
)
from calsync_common.postgres import Connection as Db
from calsync_sync_worker.domain.write_back import Target, Wanted

# A constant column list (no input reaches it): the f-strings below only splice it in.
_WANTED = (
    "b.booking_id, b.version, b.cancelled, b.starts_at, b.ends_at, b.title, b.connection_id,"
    " b.calendar_id, b.event_id, b.written_version, b.written_start, b.written_end,"
    " b.written_at, b.failures"
)


@dataclass(frozen=True)
class Claimed:
    """A booking whose write this replica holds the lease of, with the member's connection."""

    wanted: Wanted
    target: Target | None
    outcome: str | None
    outcome_version: int | None
    outcome_reason: str | None


@dataclass(frozen=True)
class Written:
    """Where the booking now is in Outlook (all None once its event is gone)."""

    connection_id: UUID | None
    calendar_id: str | None
    event_id: str | None
    start: datetime | None
    end: datetime | None


class WriteBackRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def receive(
        self, event: BookingConfirmed | BookingRescheduled | BookingCancelled
    ) -> bool:
        """Keep a booking version newer than the one held, and make its write due (False:
        an older or repeated version, ignored)."""
        cancelled = isinstance(event, BookingCancelled)
        start = end = title = None
        if isinstance(event, BookingConfirmed | BookingRescheduled):
            start, end = event.start, event.end
        if isinstance(event, BookingConfirmed):
            title = event.title
        applied = await self._db.fetchval(
            "INSERT INTO booking_events AS b (booking_id, sub_account_id, user_id, version,"
            " cancelled, starts_at, ends_at, title, due_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())"
            " ON CONFLICT (booking_id) DO UPDATE SET version = $4, cancelled = $5,"
            " starts_at = COALESCE($6, b.starts_at), ends_at = COALESCE($7, b.ends_at),"
            " title = COALESCE($8, b.title), due_at = now(), failures = 0, updated_at = now()"
            " WHERE b.version < $4 RETURNING true",
            event.booking_id,
            event.sub_account_id,
            event.user_id,
            event.version,
            cancelled,
            start,
            end,
            title,
        )
        return bool(applied)

    async def wake_member(self, sub_account_id: str, user_id: str) -> int:
        """The member's connection changed: parked writes (skipped, refused) are due again."""
        status: str = await self._db.execute(
            "UPDATE booking_events SET due_at = now(), failures = 0, updated_at = now()"
            " WHERE sub_account_id = $1 AND user_id = $2 AND due_at IS NULL"
            " AND written_version IS DISTINCT FROM version",
            sub_account_id,
            user_id,
        )
        return int(status.rsplit(" ", 1)[-1])

    async def claim(self, owner: str, lease_s: float, limit: int) -> list[Claimed]:
        rows = await self._db.fetch(
            "WITH due AS (SELECT booking_id FROM booking_events"  # noqa: S608 (a constant column list)
            " WHERE due_at <= now() AND (lease_until IS NULL OR lease_until < now())"
            " ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED)"
            " UPDATE booking_events b SET lease_owner = $1,"
            " lease_until = now() + make_interval(secs => $2)"
            " FROM due WHERE b.booking_id = due.booking_id"
            f" RETURNING {_WANTED}, b.outcome, b.outcome_version, b.outcome_reason,"
            " b.sub_account_id, b.user_id",
            owner,
            lease_s,
            limit,
        )
        targets = await self._targets({(r["sub_account_id"], r["user_id"]) for r in rows})
        return [
            Claimed(
                _wanted(r),
                targets.get((r["sub_account_id"], r["user_id"])),
                r["outcome"],
                r["outcome_version"],
                r["outcome_reason"],
            )
            for r in rows
        ]

    async def _targets(self, members: set[tuple[str, str]]) -> dict[tuple[str, str], Target]:
        """Each member's connection: the active one if any, else the latest changed."""
        if not members:
            return {}
        ordered = sorted(members)
        rows = await self._db.fetch(
            "SELECT DISTINCT ON (c.sub_account_id, c.user_id) c.sub_account_id, c.user_id,"
            " c.connection_id, c.status, c.linked_calendar_id FROM connections c"
            " JOIN unnest($1::text[], $2::text[]) AS m(sub_account_id, user_id)"
            " ON c.sub_account_id = m.sub_account_id AND c.user_id = m.user_id"
            " ORDER BY c.sub_account_id, c.user_id, (c.status = 'active') DESC,"
            " c.changed_at DESC",
            [m[0] for m in ordered],
            [m[1] for m in ordered],
        )
        return {
            (r["sub_account_id"], r["user_id"]): Target(
                r["connection_id"], r["status"], r["linked_calendar_id"]
            )
            for r in rows
        }

    async def finish(
        self,
        owner: str,
        wanted: Wanted,
        *,
        written: Written | None,
        written_at: datetime | None,
        outcome: tuple[str, str | None],
        due_at: datetime | None,
        failures: int,
    ) -> bool:
        """Record the write (``written`` None: Outlook unchanged) and its outcome, release the
        lease; the booking is due again at once when a newer version arrived meanwhile. False
        when this replica no longer holds the lease (then nothing of it may be kept)."""
        args: list[Any] = [owner, wanted.booking_id, wanted.version, outcome[0], outcome[1]]
        args += [due_at, failures]
        setting_written = ""
        if written is not None:
            setting_written = (
                ", connection_id = $8, calendar_id = $9, event_id = $10, written_start = $11,"
                " written_end = $12, written_at = $13, written_version = $3"
            )
            args += [
                written.connection_id,
                written.calendar_id,
                written.event_id,
                written.start,
                written.end,
                written_at,
            ]
        kept = await self._db.fetchval(
            "UPDATE booking_events SET lease_owner = NULL, lease_until = NULL,"  # noqa: S608 (a constant column list)
            " outcome = $4, outcome_version = $3, outcome_reason = $5, failures = $7,"
            " due_at = CASE WHEN version > $3 THEN now() ELSE $6 END, updated_at = now()"
            f"{setting_written}"
            " WHERE booking_id = $2 AND lease_owner = $1 RETURNING true",
            *args,
        )
        return bool(kept)

    async def release(self, owner: str, booking_id: UUID, due_at: datetime) -> bool:
        """Give the lease up, the write due again at ``due_at`` (its finish could not be
        recorded) and one failure more (the next backoff grows); False when this replica no
        longer holds it."""
        released = await self._db.fetchval(
            "UPDATE booking_events SET lease_owner = NULL, lease_until = NULL, due_at = $3,"
            " failures = failures + 1, updated_at = now()"
            " WHERE booking_id = $2 AND lease_owner = $1 RETURNING true",
            owner,
            booking_id,
            due_at,
        )
        return bool(released)

    # -- echoes and two-way ---------------------------------------------------------------

    async def by_booking(self, booking_ids: list[UUID]) -> dict[UUID, Wanted]:
        rows = await self._db.fetch(
            f"SELECT {_WANTED} FROM booking_events b WHERE b.booking_id = ANY($1::uuid[])",  # noqa: S608 (a constant column list)
            booking_ids,
        )
        return {r["booking_id"]: _wanted(r) for r in rows}

    async def by_event(self, connection_id: UUID, event_ids: list[str]) -> dict[str, Wanted]:
        rows = await self._db.fetch(
            f"SELECT {_WANTED} FROM booking_events b"  # noqa: S608 (a constant column list)
            " WHERE b.connection_id = $1 AND b.event_id = ANY($2::text[])",
            connection_id,
            event_ids,
        )
        return {r["event_id"]: _wanted(r) for r in rows}

    async def in_calendar(self, connection_id: UUID, calendar_id: str) -> list[Wanted]:
        rows = await self._db.fetch(
            f"SELECT {_WANTED} FROM booking_events b"  # noqa: S608 (a constant column list)
            " WHERE b.connection_id = $1 AND b.calendar_id = $2 AND b.event_id IS NOT NULL",
            connection_id,
            calendar_id,
        )
        return [_wanted(r) for r in rows]

    async def seen_in_outlook(
        self, booking_id: UUID, *, start: datetime | None, end: datetime | None
    ) -> None:
        """The user moved (times) or deleted (None) the event: that is now what Outlook holds."""
        if start is None or end is None:
            await self._db.execute(
                "UPDATE booking_events SET event_id = NULL, calendar_id = NULL,"
                " written_start = NULL, written_end = NULL, updated_at = now()"
                " WHERE booking_id = $1",
                booking_id,
            )
            return
        await self._db.execute(
            "UPDATE booking_events SET written_start = $2, written_end = $3, updated_at = now()"
            " WHERE booking_id = $1",
            booking_id,
            start,
            end,
        )

    async def sync_preference(self, connection_id: UUID) -> str | None:
        value: str | None = await self._db.fetchval(
            "SELECT sync_preference FROM connections WHERE connection_id = $1", connection_id
        )
        return value


def _wanted(r: Any) -> Wanted:
    return Wanted(
        booking_id=r["booking_id"],
        version=r["version"],
        cancelled=r["cancelled"],
        start=r["starts_at"],
        end=r["ends_at"],
        title=r["title"],
        connection_id=r["connection_id"],
        calendar_id=r["calendar_id"],
        event_id=r["event_id"],
        written_version=r["written_version"],
        written_start=r["written_start"],
        written_end=r["written_end"],
        written_at=r["written_at"],
        failures=r["failures"],
    )
