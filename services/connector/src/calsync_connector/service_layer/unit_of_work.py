"""The connector's unit of work: its repository beside the outbox, on one transaction."""

from __future__ import annotations

from typing import Protocol

from calsync_common.contracts.connections import ConnectionSnapshot
from calsync_common.contracts.connections import MicrosoftAccount as AccountContract
from calsync_common.ports import Outbox, UnitOfWork, Work
from calsync_common.postgres.uow import PostgresWork
from calsync_connector.adapters.repository import ConnectionRepository
from calsync_connector.domain.model import Connection


class ConnectorWork(Work, Protocol):
    """What the service layer writes through (a protocol: PostgreSQL or a fake stands behind)."""

    @property
    def connections(self) -> ConnectionRepository: ...


class PostgresConnectorWork(PostgresWork):
    @property
    def connections(self) -> ConnectionRepository:
        return ConnectionRepository(self.connection)


ConnectorUnitOfWork = UnitOfWork[ConnectorWork]


def snapshot(conn: Connection) -> ConnectionSnapshot:
    """The whole connection as the other services need it (compacted topic, keyed by id)."""
    return ConnectionSnapshot(
        connection_id=conn.id,
        version=conn.version,
        sub_account_id=conn.sub_account_id,
        user_id=conn.user_id,
        account=AccountContract(
            tenant_id=conn.account.tenant_id,
            object_id=conn.account.object_id,
            username=conn.account.email,
            is_personal=conn.account.kind == "personal",
            display_name=conn.account.display_name,
        ),
        status=conn.status,
        sync_preference=conn.settings.sync_preference,
        linked_calendar_id=conn.writable_linked_calendar_id,
        conflict_calendar_ids=conn.settings.conflict_calendar_ids,
        blocking_show_as=conn.settings.blocking_show_as,
        time_zone=conn.account.time_zone,
        changed_at=conn.updated_at,
    )


async def publish(outbox: Outbox, conn: Connection) -> None:
    await outbox.add(snapshot(conn), subject=str(conn.id))
