"""SQL of the connector: connections, sealed token caches, OAuth flows, calendar freshness.

Everything runs on the connection of the caller's unit of work. The product's limits live in
two partial unique indexes (migration ``connector_0002``), so :meth:`insert_if_free` has one
winner however many sign-ins race.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from calsync_common.postgres import Connection as Db
from calsync_connector.adapters.token_cipher import Sealed
from calsync_connector.domain.model import (
    Calendar,
    CalendarSettings,
    Connection,
    MicrosoftAccount,
    Warning,
)

_COLUMNS = (
    "id, sub_account_id, user_id, tenant_id, object_id, email, display_name, time_zone, status,"
    " calendars, settings, warnings, version, created_at, updated_at"
)


@dataclass(frozen=True)
class FlowRecord:
    state: str
    sub_account_id: str
    user_id: str
    return_url: str
    sealed: Sealed
    expires_at: datetime
    #: Set when this read consumed it; a replay finds it already consumed.
    first_use: bool


@dataclass(frozen=True)
class Freshness:
    calendar_id: str
    status: str
    subscription: str
    last_synced_at: datetime | None
    last_error: str | None
    changed_at: datetime


def _to_connection(row: Any) -> Connection:
    settings = json.loads(row["settings"])
    return Connection(
        id=row["id"],
        sub_account_id=row["sub_account_id"],
        user_id=row["user_id"],
        account=MicrosoftAccount(
            tenant_id=row["tenant_id"],
            object_id=row["object_id"],
            email=row["email"],
            display_name=row["display_name"],
            time_zone=row["time_zone"],
        ),
        status=row["status"],
        calendars=tuple(Calendar(**c) for c in json.loads(row["calendars"])),
        settings=CalendarSettings(
            linked_calendar_id=settings["linked_calendar_id"],
            conflict_calendar_ids=tuple(settings["conflict_calendar_ids"]),
            sync_preference=settings["sync_preference"],
            blocking_show_as=tuple(settings["blocking_show_as"]),
        ),
        warnings=tuple(Warning(**w) for w in json.loads(row["warnings"])),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _values(c: Connection) -> tuple[Any, ...]:
    return (
        c.id,
        c.sub_account_id,
        c.user_id,
        c.account.tenant_id,
        c.account.object_id,
        c.account.email,
        c.account.display_name,
        c.account.time_zone,
        c.status,
        json.dumps([asdict(cal) for cal in c.calendars]),
        json.dumps(asdict(c.settings)),
        json.dumps([asdict(w) for w in c.warnings]),
        c.version,
        c.created_at,
        c.updated_at,
    )


class ConnectionRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def get(
        self, connection_id: UUID, *, sub_account_id: str | None = None, lock: bool = False
    ) -> Connection | None:
        """By id; with ``sub_account_id`` only within it (another's ids are simply not found)."""
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM connections WHERE id = $1"  # noqa: S608 (constant columns)
            " AND ($2::text IS NULL OR sub_account_id = $2)" + (" FOR UPDATE" if lock else ""),
            connection_id,
            sub_account_id,
        )
        return _to_connection(row) if row is not None else None

    async def in_sub_account(self, sub_account_id: str, user_id: str | None) -> list[Connection]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM connections WHERE sub_account_id = $1"  # noqa: S608
            " AND ($2::text IS NULL OR user_id = $2) ORDER BY created_at, id",
            sub_account_id,
            user_id,
        )
        return [_to_connection(r) for r in rows]

    async def insert_if_free(self, c: Connection) -> bool:
        """Insert unless a live connection holds the user's place or the account (False)."""
        inserted = await self._db.fetchval(
            f"INSERT INTO connections ({_COLUMNS}) VALUES"  # noqa: S608 (constant columns)
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12::jsonb, $13, $14,"
            " $15) ON CONFLICT DO NOTHING RETURNING true",
            *_values(c),
        )
        return bool(inserted)

    async def live_for_user(self, sub_account_id: str, user_id: str) -> Connection | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM connections WHERE sub_account_id = $1 AND user_id = $2"  # noqa: S608
            " AND status <> 'disconnected' FOR UPDATE",
            sub_account_id,
            user_id,
        )
        return _to_connection(row) if row is not None else None

    async def live_for_account(self, tenant_id: str, object_id: str) -> Connection | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM connections WHERE tenant_id = $1 AND object_id = $2"  # noqa: S608
            " AND status <> 'disconnected' FOR UPDATE",
            tenant_id,
            object_id,
        )
        return _to_connection(row) if row is not None else None

    async def update(self, c: Connection, *, expected_version: int) -> bool:
        """Write ``c`` if the stored version is still ``expected_version`` (False otherwise)."""
        v = _values(c)
        updated = await self._db.fetchval(
            "UPDATE connections SET tenant_id = $2, object_id = $3, email = $4,"
            " display_name = $5, time_zone = $6, status = $7, calendars = $8::jsonb,"
            " settings = $9::jsonb, warnings = $10::jsonb, version = $11, updated_at = $12"
            " WHERE id = $1 AND version = $13 RETURNING true",
            v[0],
            *v[3:13],
            v[14],
            expected_version,
        )
        return bool(updated)

    # -- token caches (sealed) ------------------------------------------------------------

    async def token_cache(self, connection_id: UUID) -> Sealed | None:
        row = await self._db.fetchrow(
            "SELECT key_id, nonce, ciphertext FROM token_caches WHERE connection_id = $1",
            connection_id,
        )
        if row is None:
            return None
        return Sealed(row["key_id"], bytes(row["nonce"]), bytes(row["ciphertext"]))

    async def save_token_cache(self, connection_id: UUID, sealed: Sealed) -> None:
        await self._db.execute(
            "INSERT INTO token_caches (connection_id, key_id, nonce, ciphertext)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id) DO UPDATE"
            " SET key_id = $2, nonce = $3, ciphertext = $4, updated_at = now()",
            connection_id,
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
        )

    async def replace_token_cache(self, connection_id: UUID, read: Sealed, sealed: Sealed) -> bool:
        """Store ``sealed`` only if the cache is still the one that was ``read`` (its nonce is
        unique per seal): a sign-in that replaced it meanwhile wins over a refresh."""
        replaced = await self._db.fetchval(
            "UPDATE token_caches SET key_id = $3, nonce = $4, ciphertext = $5, updated_at = now()"
            " WHERE connection_id = $1 AND nonce = $2 RETURNING true",
            connection_id,
            read.nonce,
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
        )
        return bool(replaced)

    async def destroy_token_cache(self, connection_id: UUID) -> None:
        await self._db.execute("DELETE FROM token_caches WHERE connection_id = $1", connection_id)

    # -- OAuth flows ----------------------------------------------------------------------

    async def save_flow(
        self,
        state: str,
        sub_account_id: str,
        user_id: str,
        return_url: str,
        sealed: Sealed,
        expires_at: datetime,
    ) -> None:
        await self._db.execute(
            "INSERT INTO oauth_flows (state, sub_account_id, user_id, return_url, key_id, nonce,"
            " ciphertext, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            state,
            sub_account_id,
            user_id,
            return_url,
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
            expires_at,
        )

    async def consume_flow(self, state: str, now: datetime) -> FlowRecord | None:
        """The flow of ``state``, marked used by this call; ``first_use`` False on a replay."""
        row = await self._db.fetchrow(
            "WITH used AS (UPDATE oauth_flows SET consumed_at = $2 WHERE state = $1"
            " AND consumed_at IS NULL RETURNING state)"
            " SELECT f.*, (SELECT count(*) FROM used) = 1 AS first_use"
            " FROM oauth_flows f WHERE f.state = $1",
            state,
            now,
        )
        if row is None:
            return None
        return FlowRecord(
            state=row["state"],
            sub_account_id=row["sub_account_id"],
            user_id=row["user_id"],
            return_url=row["return_url"],
            sealed=Sealed(row["key_id"], bytes(row["nonce"]), bytes(row["ciphertext"])),
            expires_at=row["expires_at"],
            first_use=row["first_use"],
        )

    async def purge_flows(self, older_than: datetime) -> int:
        """Flows past their expiry are useless: their verifiers go too."""
        deleted = await self._db.fetchval(
            "WITH gone AS (DELETE FROM oauth_flows WHERE expires_at < $1 RETURNING 1)"
            " SELECT count(*) FROM gone",
            older_than,
        )
        return int(deleted)

    async def erase_disconnected(self, before: datetime, limit: int) -> list[UUID]:
        """Delete connections disconnected before ``before`` (and what hangs on them)."""
        rows = await self._db.fetch(
            "DELETE FROM connections WHERE id IN (SELECT id FROM connections"
            " WHERE status = 'disconnected' AND updated_at < $1 ORDER BY updated_at LIMIT $2"
            " FOR UPDATE SKIP LOCKED) RETURNING id",
            before,
            limit,
        )
        ids = [r["id"] for r in rows]
        if ids:
            await self._db.execute(
                "DELETE FROM calendar_freshness WHERE connection_id = ANY($1::uuid[])", ids
            )
        return ids

    # -- calendar freshness (projected from the sync-worker's sync-status) ----------------

    async def freshness(self, connection_id: UUID) -> dict[str, Freshness]:
        rows = await self._db.fetch(
            "SELECT calendar_id, status, subscription, last_synced_at, last_error, changed_at"
            " FROM calendar_freshness WHERE connection_id = $1",
            connection_id,
        )
        return {r["calendar_id"]: Freshness(**dict(r)) for r in rows}

    async def record_freshness(self, connection_id: UUID, f: Freshness) -> None:
        """Keep the newest report per calendar (an older one arriving late changes nothing)."""
        await self._db.execute(
            "INSERT INTO calendar_freshness (connection_id, calendar_id, status, subscription,"
            " last_synced_at, last_error, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (connection_id, calendar_id) DO UPDATE SET status = $3,"
            " subscription = $4, last_synced_at = $5, last_error = $6, changed_at = $7"
            " WHERE calendar_freshness.changed_at <= $7",
            connection_id,
            f.calendar_id,
            f.status,
            f.subscription,
            f.last_synced_at,
            f.last_error,
            f.changed_at,
        )
