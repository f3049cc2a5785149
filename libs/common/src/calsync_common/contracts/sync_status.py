"""Sync freshness of each synced calendar (``calsync.sync-status.v1``, compacted per calendar).

Published by the sync-worker whenever a calendar's sync state changes (a round finished, a
subscription was lost or restored, the connection needs reauthorization); the connector and the
availability service project the latest one per calendar.
"""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from calsync_common.contracts.base import EventPayload, register
from calsync_common.contracts.calendar_events import calendar_key
from calsync_common.contracts.topics import SYNC_STATUS

SyncHealth = Literal["healthy", "syncing", "stale", "reauth_required", "failed", "stopped"]
SubscriptionState = Literal["active", "renewing", "missing", "stopped"]


@register
class CalendarSyncStatus(EventPayload):
    """How fresh calsync's copy of one calendar is, as the sync-worker last saw it."""

    event_type: ClassVar[str] = "dev.calsync.calendar_sync.status.v1"
    topic: ClassVar[str] = SYNC_STATUS.name

    connection_id: UUID
    calendar_id: str
    status: SyncHealth
    subscription: SubscriptionState
    #: When the calendar's Graph subscription expires, as Graph granted it (None: none held).
    subscription_expires_at: AwareDatetime | None = None
    #: When calsync last knew the calendar fully (a delta round that completed).
    last_synced_at: AwareDatetime | None = None
    last_error: str | None = Field(default=None, max_length=500)
    changed_at: AwareDatetime

    def partition_key(self) -> str:
        return calendar_key(self.connection_id, self.calendar_id)
