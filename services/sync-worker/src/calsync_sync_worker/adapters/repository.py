"""SQL of the sync-worker: the connections projection, synced calendars, subscriptions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, TypeVar
from uuid import UUID

from asyncpg import Record

from calsync_common.contracts.connections import ConnectionSnapshot
from calsync_common.postgres import Connection as Db
from calsync_sync_worker.domain.calendars import CalendarPlan

T = TypeVar("T")


@dataclass(frozen=True)
class Claims(Generic[T]):
    """What a claim leased, and whether due work was left to others: rows another transaction
    held locked (``SKIP LOCKED``), or more than the limit. A row locked by the *other* loop of
    the same calendar (the delta runner and the subscription upkeep lease different columns of
    one row) is still due when that transaction ends: its claimer looks again soon, not at its
    next poll."""

    items: list[T]
    left_due: bool


_SUBSCRIPTION_DUE = (
    "c.subscription_due_at <= now() AND (c.lease_until IS NULL OR c.lease_until < now())"
)
_ROUND_DUE = (
    "k.connection_id = c.connection_id AND k.status = 'active'"
    " WHERE c.wanted AND NOT c.paused AND c.next_round_at <= now()"
    " AND (c.round_lease_until IS NULL OR c.round_lease_until < now())"
)

#: Wraps a claim (a ``due`` CTE locking with SKIP LOCKED, an UPDATE ``claimed`` returning the
#: leased rows) so that one row always comes back: the leased rows, or one of NULLs, each with
#: how many rows were due and free of a lease when the statement started (up to the limit + 1).
_WITH_DUE_COUNT = (
    "{claim}, waiting AS (SELECT count(*) AS n FROM (SELECT 1 FROM {due_rows} LIMIT $3 + 1) w)"
    " SELECT claimed.*, waiting.n AS due_count FROM waiting LEFT JOIN claimed ON true"
)


def _claims(rows: list[Record], make: Callable[[Record], T]) -> Claims[T]:
    items = [make(r) for r in rows if r["calendar_id"] is not None]
    return Claims(items, left_due=bool(rows) and rows[0]["due_count"] > len(items))


@dataclass(frozen=True)
class FinishedRound:
    """A round recorded under its lease: whether the calendar is due again at once (asked for
    while the round ran), and its subscription as the round's sync status reports it."""

    due_again: bool
    subscription: Literal["active", "missing"]
    subscription_expires_at: datetime | None


@dataclass(frozen=True)
class RoundWork:
    """A calendar whose delta round this replica holds the lease of."""

    connection_id: UUID
    calendar_id: str
    delta_link: str | None
    window_start: datetime | None
    window_end: datetime | None
    time_zone: str | None
    failures: int


@dataclass(frozen=True)
class ClaimedCalendar:
    """A calendar whose subscription upkeep this replica holds the lease of."""

    connection_id: UUID
    calendar_id: str
    wanted: bool
    paused: bool
    connection_active: bool
    subscription_id: str | None
    expires_at: datetime | None
    failures: int


@dataclass(frozen=True)
class SubscriptionRecord:
    subscription_id: str
    connection_id: UUID
    calendar_id: str
    client_state_hash: bytes
    expires_at: datetime


class SyncRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def apply_snapshot(self, s: ConnectionSnapshot) -> bool:
        """Keep the snapshot if it is newer than the one held (False: stale, ignored)."""
        applied = await self._db.fetchval(
            "INSERT INTO connections AS c (connection_id, version, sub_account_id, user_id,"
            " tenant_id, object_id, status, linked_calendar_id, conflict_calendar_ids,"
            " sync_preference, time_zone, changed_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            " ON CONFLICT (connection_id) DO UPDATE SET version = $2, status = $7,"
            " tenant_id = $5, object_id = $6, linked_calendar_id = $8,"
            " conflict_calendar_ids = $9, sync_preference = $10, time_zone = $11,"
            " changed_at = $12 WHERE c.version < $2 RETURNING true",
            s.connection_id,
            s.version,
            s.sub_account_id,
            s.user_id,
            s.account.tenant_id,
            s.account.object_id,
            s.status,
            s.linked_calendar_id,
            list(s.conflict_calendar_ids),
            s.sync_preference,
            s.time_zone,
            s.changed_at,
        )
        return bool(applied)

    async def apply_plan(self, p: CalendarPlan) -> None:
        """Calendars in the plan are wanted (paused or not); the others are let go of. Every
        change makes the calendar's subscription due for a look."""
        await self._db.execute(
            "INSERT INTO calendars (connection_id, calendar_id, wanted, paused)"
            " SELECT $1, c, true, c = ANY($3::text[]) FROM unnest($2::text[]) AS c"
            " ON CONFLICT (connection_id, calendar_id) DO UPDATE SET wanted = true,"
            " paused = EXCLUDED.paused, subscription_due_at = now(), next_round_at = now(),"
            " round_requested_at = now(),"
            " updated_at = now()",
            p.connection_id,
            sorted(p.wanted),
            sorted(p.paused),
        )
        await self._db.execute(
            "UPDATE calendars SET wanted = false, subscription_due_at = now(), updated_at = now()"
            " WHERE connection_id = $1 AND wanted AND NOT (calendar_id = ANY($2::text[]))",
            p.connection_id,
            sorted(p.wanted),
        )

    async def forget_connection(self, connection_id: UUID) -> None:
        """A tombstone: nothing of the connection is kept."""
        for table in ("subscriptions", "calendars", "connections"):
            await self._db.execute(
                f"DELETE FROM {table} WHERE connection_id = $1",  # noqa: S608 (fixed names)
                connection_id,
            )

    async def calendars(self, connection_id: UUID) -> dict[str, tuple[bool, bool]]:
        """calendar id → (wanted, paused)."""
        rows = await self._db.fetch(
            "SELECT calendar_id, wanted, paused FROM calendars WHERE connection_id = $1",
            connection_id,
        )
        return {r["calendar_id"]: (r["wanted"], r["paused"]) for r in rows}

    async def subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        row = await self._db.fetchrow(
            "SELECT subscription_id, connection_id, calendar_id, client_state_hash, expires_at"
            " FROM subscriptions WHERE subscription_id = $1",
            subscription_id,
        )
        if row is None:
            return None
        return SubscriptionRecord(
            row["subscription_id"],
            row["connection_id"],
            row["calendar_id"],
            bytes(row["client_state_hash"]),
            row["expires_at"],
        )

    async def save_subscription(self, s: SubscriptionRecord) -> None:
        await self._db.execute(
            "INSERT INTO subscriptions (subscription_id, connection_id, calendar_id,"
            " client_state_hash, expires_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (connection_id, calendar_id) DO UPDATE SET"
            " subscription_id = $1, client_state_hash = $4, expires_at = $5, renewed_at = NULL",
            s.subscription_id,
            s.connection_id,
            s.calendar_id,
            s.client_state_hash,
            s.expires_at,
        )

    # -- subscription upkeep (leased per calendar) ------------------------------------------

    async def claim_subscription_work(
        self, owner: str, lease_s: float, limit: int
    ) -> Claims[ClaimedCalendar]:
        """Lease calendars whose subscription is due for a look (no other replica holds them)."""
        rows = await self._db.fetch(
            _WITH_DUE_COUNT.format(
                claim="WITH due AS (SELECT c.connection_id, c.calendar_id FROM calendars c"  # noqa: S608 (constants only)
                f" WHERE {_SUBSCRIPTION_DUE}"
                " ORDER BY c.subscription_due_at LIMIT $3 FOR UPDATE SKIP LOCKED),"
                " claimed AS (UPDATE calendars c SET lease_owner = $1,"
                " lease_until = now() + make_interval(secs => $2)"
                " FROM due WHERE c.connection_id = due.connection_id"
                " AND c.calendar_id = due.calendar_id"
                " RETURNING c.connection_id, c.calendar_id, c.wanted, c.paused,"
                " c.subscription_failures,"
                " coalesce((SELECT k.status = 'active' FROM connections k"
                "  WHERE k.connection_id = c.connection_id), false) AS connection_active,"
                " (SELECT s.subscription_id FROM subscriptions s WHERE s.connection_id ="
                "  c.connection_id AND s.calendar_id = c.calendar_id) AS subscription_id,"
                " (SELECT s.expires_at FROM subscriptions s WHERE s.connection_id ="
                "  c.connection_id AND s.calendar_id = c.calendar_id) AS expires_at)",
                due_rows=f"calendars c WHERE {_SUBSCRIPTION_DUE}",
            ),
            owner,
            lease_s,
            limit,
        )
        return _claims(
            rows,
            lambda r: ClaimedCalendar(
                r["connection_id"],
                r["calendar_id"],
                r["wanted"],
                r["paused"],
                r["connection_active"],
                r["subscription_id"],
                r["expires_at"],
                r["subscription_failures"],
            ),
        )

    async def finish_subscription_work(
        self,
        owner: str,
        connection_id: UUID,
        calendar_id: str,
        *,
        due_at: datetime,
        failures: int,
        error: str | None,
    ) -> None:
        await self._db.execute(
            "UPDATE calendars SET lease_owner = NULL, lease_until = NULL,"
            " subscription_due_at = $4, subscription_failures = $5, subscription_error = $6,"
            " updated_at = now()"
            " WHERE connection_id = $2 AND calendar_id = $3 AND lease_owner = $1",
            owner,
            connection_id,
            calendar_id,
            due_at,
            failures,
            error,
        )

    async def drop_subscription(self, connection_id: UUID, calendar_id: str) -> None:
        await self._db.execute(
            "DELETE FROM subscriptions WHERE connection_id = $1 AND calendar_id = $2",
            connection_id,
            calendar_id,
        )

    async def drop_subscription_if_current(
        self, connection_id: UUID, calendar_id: str, subscription_id: str
    ) -> bool:
        """Forget the calendar's subscription only if it is still ``subscription_id``: a late
        notice about a subscription already replaced must not drop its replacement."""
        dropped = await self._db.fetchval(
            "DELETE FROM subscriptions WHERE connection_id = $1 AND calendar_id = $2"
            " AND subscription_id = $3 RETURNING true",
            connection_id,
            calendar_id,
            subscription_id,
        )
        return bool(dropped)

    async def renewed(self, subscription_id: str, expires_at: datetime) -> None:
        await self._db.execute(
            "UPDATE subscriptions SET expires_at = $2, renewed_at = now()"
            " WHERE subscription_id = $1",
            subscription_id,
            expires_at,
        )

    async def retire_calendar(self, connection_id: UUID, calendar_id: str) -> None:
        await self.drop_subscription(connection_id, calendar_id)
        await self._db.execute(
            "DELETE FROM calendars WHERE connection_id = $1 AND calendar_id = $2 AND NOT wanted",
            connection_id,
            calendar_id,
        )

    async def subscription_due_now(self, connection_id: UUID, calendar_id: str | None) -> None:
        """Look at the calendar's (or all the connection's) subscriptions on the next round."""
        await self._db.execute(
            "UPDATE calendars SET subscription_due_at = now() WHERE connection_id = $1"
            " AND ($2::text IS NULL OR calendar_id = $2)",
            connection_id,
            calendar_id,
        )

    async def rounds_due_now(self, calendars: list[tuple[UUID, str]]) -> None:
        """:meth:`round_due_now` for many calendars in one statement (in a fixed lock order)."""
        if not calendars:
            return
        ordered = sorted(set(calendars))
        await self._db.execute(
            "UPDATE calendars c SET next_round_at = now(), round_requested_at = now()"
            " FROM unnest($1::uuid[], $2::text[]) AS d(connection_id, calendar_id)"
            " WHERE c.connection_id = d.connection_id AND c.calendar_id = d.calendar_id",
            [c for c, _ in ordered],
            [k for _, k in ordered],
        )

    async def round_due_now(self, connection_id: UUID, calendar_id: str) -> None:
        """Read the calendar from Graph on the delta runner's next look."""
        await self._db.execute(
            "UPDATE calendars SET next_round_at = now(), round_requested_at = now()"
            " WHERE connection_id = $1"
            " AND calendar_id = $2",
            connection_id,
            calendar_id,
        )

    # -- delta rounds (leased per calendar) -------------------------------------------------

    async def claim_rounds(self, owner: str, lease_s: float, limit: int) -> Claims[RoundWork]:
        """Lease calendars due for a delta round (synced, not paused, connection active)."""
        rows = await self._db.fetch(
            _WITH_DUE_COUNT.format(
                claim="WITH due AS (SELECT c.connection_id, c.calendar_id FROM calendars c"  # noqa: S608 (constants only)
                f" JOIN connections k ON {_ROUND_DUE}"
                " ORDER BY c.next_round_at LIMIT $3 FOR UPDATE OF c SKIP LOCKED),"
                " claimed AS (UPDATE calendars c SET round_lease_owner = $1,"
                " round_claimed_at = now(),"
                " round_lease_until = now() + make_interval(secs => $2)"
                " FROM due WHERE c.connection_id = due.connection_id"
                " AND c.calendar_id = due.calendar_id"
                " RETURNING c.connection_id, c.calendar_id, c.delta_link, c.window_start,"
                " c.window_end, c.round_failures,"
                " (SELECT k.time_zone FROM connections k"
                "  WHERE k.connection_id = c.connection_id) AS time_zone)",
                due_rows=f"calendars c JOIN connections k ON {_ROUND_DUE}",
            ),
            owner,
            lease_s,
            limit,
        )
        return _claims(
            rows,
            lambda r: RoundWork(
                r["connection_id"],
                r["calendar_id"],
                r["delta_link"],
                r["window_start"],
                r["window_end"],
                r["time_zone"],
                r["round_failures"],
            ),
        )

    async def release_round(self, owner: str, w: RoundWork, next_round_at: datetime) -> bool:
        """Give up the lease of a round that could not be recorded, the calendar due again at
        ``next_round_at`` (or sooner, if a notification makes it due) and one failure more (the
        next backoff grows); False when this replica no longer holds it."""
        released = await self._db.fetchval(
            "UPDATE calendars SET round_lease_owner = NULL, round_lease_until = NULL,"
            " next_round_at = $4, round_failures = round_failures + 1, updated_at = now()"
            " WHERE connection_id = $2 AND calendar_id = $3 AND round_lease_owner = $1"
            " RETURNING true",
            owner,
            w.connection_id,
            w.calendar_id,
            next_round_at,
        )
        return bool(released)

    async def finish_round(
        self,
        owner: str,
        w: RoundWork,
        *,
        delta_link: str | None,
        window_start: datetime | None,
        window_end: datetime | None,
        synced_at: datetime | None,
        next_round_at: datetime,
        failures: int,
        error: str | None,
    ) -> FinishedRound | None:
        """Record the round (in the transaction that put its events in the outbox); None when
        this replica no longer holds the lease (then nothing of the round may be kept). A
        round asked for while this one ran (a notification, a snapshot) stays due: this round
        may have read Graph before the change it announces. In the same statement: whether the
        calendar is due again, and its subscription (for the round's sync status)."""
        row = await self._db.fetchrow(
            "UPDATE calendars c SET delta_link = $4, window_start = $5, window_end = $6,"
            " last_synced_at = coalesce($7, last_synced_at),"
            " next_round_at = CASE WHEN $10::text IS NULL"
            " AND round_requested_at >= round_claimed_at THEN now() ELSE $8 END,"
            " round_failures = $9, last_error = $10, round_lease_owner = NULL,"
            " round_lease_until = NULL, updated_at = now()"
            " FROM (SELECT) AS one LEFT JOIN subscriptions s"
            " ON s.connection_id = $2 AND s.calendar_id = $3"
            " WHERE c.connection_id = $2 AND c.calendar_id = $3 AND c.round_lease_owner = $1"
            " RETURNING c.next_round_at <= now() AS due_again, s.subscription_id IS NOT NULL"
            " AS subscribed, s.expires_at",
            owner,
            w.connection_id,
            w.calendar_id,
            delta_link,
            window_start,
            window_end,
            synced_at,
            next_round_at,
            failures,
            error,
        )
        if row is None:
            return None
        return FinishedRound(
            due_again=row["due_again"],
            subscription="active" if row["subscribed"] else "missing",
            subscription_expires_at=row["expires_at"],
        )

    async def last_synced(self, connection_id: UUID) -> dict[str, datetime | None]:
        """calendar id → when a round last completed, for every calendar of the connection."""
        rows = await self._db.fetch(
            "SELECT calendar_id, last_synced_at FROM calendars WHERE connection_id = $1",
            connection_id,
        )
        return {r["calendar_id"]: r["last_synced_at"] for r in rows}

    async def expire_subscription_now(self, subscription_id: str) -> None:
        """Make the next upkeep round renew it (Graph asked for reauthorization)."""
        await self._db.execute(
            "UPDATE subscriptions SET expires_at = now() WHERE subscription_id = $1",
            subscription_id,
        )
