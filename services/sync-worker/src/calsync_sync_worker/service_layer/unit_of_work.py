"""The sync-worker's unit of work: its repository beside the outbox, on one transaction."""

from __future__ import annotations

from calsync_common.postgres.uow import PostgresWork
from calsync_sync_worker.adapters.repository import SyncRepository


class SyncWork(PostgresWork):
    @property
    def sync(self) -> SyncRepository:
        return SyncRepository(self.connection)
