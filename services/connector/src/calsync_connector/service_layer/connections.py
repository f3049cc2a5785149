"""Reading and changing connections: settings (with If-Match), calendar refresh, disconnect.

Every change is one unit of work that writes the connection and puts its full snapshot in the
outbox, so the other services see exactly the committed state, in version order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from calsync_connector.adapters.repository import ConnectionRepository, Freshness
from calsync_connector.domain.errors import (
    ConnectionDisconnected,
    ConnectionNotFound,
    VersionMismatch,
)
from calsync_connector.domain.model import (
    Calendar,
    CalendarSettings,
    CalendarsRefresh,
    Connection,
    SettingsChange,
    change_settings,
    disconnect,
    refresh_calendars,
)
from calsync_connector.service_layer.unit_of_work import ConnectorUnitOfWork, publish


@dataclass(frozen=True)
class ConnectionView:
    connection: Connection
    freshness: dict[str, Freshness]


#: Reads the connection's calendar list from Graph (with a valid access token).
CalendarReader = Callable[[Connection], Awaitable[tuple[Calendar, ...]]]


class ConnectionsService:
    def __init__(self, uow: ConnectorUnitOfWork, clock: Callable[[], datetime]) -> None:
        self._uow = uow
        self._clock = clock

    async def list(self, sub_account_id: str, user_id: str | None) -> list[ConnectionView]:
        async with self._uow() as work:
            found = await work.connections.in_sub_account(sub_account_id, user_id)
            return [ConnectionView(c, await work.connections.freshness(c.id)) for c in found]

    async def get(self, sub_account_id: str, connection_id: UUID) -> ConnectionView:
        async with self._uow() as work:
            conn = await work.connections.get(connection_id, sub_account_id=sub_account_id)
            if conn is None:
                raise ConnectionNotFound()
            return ConnectionView(conn, await work.connections.freshness(conn.id))

    async def change_settings(
        self,
        sub_account_id: str,
        connection_id: UUID,
        wanted: CalendarSettings,
        if_match: int | None,
    ) -> SettingsChange:
        async with self._uow() as work:
            conn = await self._live(work.connections, sub_account_id, connection_id)
            if if_match is not None and if_match != conn.version:
                raise VersionMismatch()
            change = change_settings(conn, wanted, self._clock())
            await work.connections.update(change.connection, expected_version=conn.version)
            await publish(work.outbox, change.connection)
            return change

    async def refresh_calendars(
        self, sub_account_id: str, connection_id: UUID, read: CalendarReader
    ) -> CalendarsRefresh:
        async with self._uow() as work:
            conn = await self._live(work.connections, sub_account_id, connection_id, lock=False)
        calendars = await read(conn)  # a Graph call: outside any transaction
        async with self._uow() as work:
            current = await self._live(work.connections, sub_account_id, connection_id)
            refresh = refresh_calendars(current, calendars, self._clock())
            await work.connections.update(refresh.connection, expected_version=current.version)
            await publish(work.outbox, refresh.connection)
            return refresh

    async def disconnect(self, sub_account_id: str, connection_id: UUID) -> Connection:
        """Tokens destroyed, status disconnected, the snapshot published. Idempotent."""
        async with self._uow() as work:
            conn = await work.connections.get(
                connection_id, sub_account_id=sub_account_id, lock=True
            )
            if conn is None:
                raise ConnectionNotFound()
            await work.connections.destroy_token_cache(conn.id)
            if conn.status == "disconnected":
                return conn
            gone = disconnect(conn, self._clock())
            await work.connections.update(gone, expected_version=conn.version)
            await publish(work.outbox, gone)
            return gone

    @staticmethod
    async def _live(
        repo: ConnectionRepository, sub_account_id: str, connection_id: UUID, *, lock: bool = True
    ) -> Connection:
        conn = await repo.get(connection_id, sub_account_id=sub_account_id, lock=lock)
        if conn is None:
            raise ConnectionNotFound()
        if conn.status == "disconnected":
            raise ConnectionDisconnected()
        return conn
