"""The sync-worker's unit of work: its repositories beside the outbox, on one transaction."""

from __future__ import annotations

from calsync_common.postgres.uow import PostgresWork
from calsync_sync_worker.adapters.repository import SyncRepository
from calsync_sync_worker.adapters.write_back_repository import WriteBackRepository


class SyncWork(PostgresWork):
    @property
    def sync(self) -> SyncRepository:
        return SyncRepository(self.connection)

    @property
    def write_back(self) -> WriteBackRepository:
        return WriteBackRepository(self.connection)
