"""Health of each connection's sync (``calsync.sync-status.v1``, compacted per connection)."""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime

from calsync_common.contracts.base import EventPayload, register
from calsync_common.contracts.topics import SYNC_STATUS

SyncHealth = Literal["healthy", "syncing", "degraded", "reauthorization_required", "failed"]


@register
class SyncStatusChanged(EventPayload):
    event_type: ClassVar[str] = "dev.calsync.sync_status.changed.v1"
    topic: ClassVar[str] = SYNC_STATUS.name

    connection_id: UUID
    status: SyncHealth
    reason: str | None = None
    last_synced_at: AwareDatetime | None = None
    changed_at: AwareDatetime

    def partition_key(self) -> str:
        return str(self.connection_id)
