"""SQL of the sync-worker: the connections projection, synced calendars, subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from calsync_common.contracts.connections import ConnectionSnapshot
from calsync_common.postgres import Connection as Db
from calsync_sync_worker.domain.calendars import CalendarPlan


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
        """Calendars in the plan are wanted (paused or not); the others are let go of."""
        await self._db.execute(
            "INSERT INTO calendars (connection_id, calendar_id, wanted, paused)"
            " SELECT $1, c, true, c = ANY($3::text[]) FROM unnest($2::text[]) AS c"
            " ON CONFLICT (connection_id, calendar_id) DO UPDATE SET wanted = true,"
            " paused = EXCLUDED.paused, updated_at = now()",
            p.connection_id,
            sorted(p.wanted),
            sorted(p.paused),
        )
        await self._db.execute(
            "UPDATE calendars SET wanted = false, updated_at = now()"
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
