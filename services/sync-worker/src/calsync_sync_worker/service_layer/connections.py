"""Keeping the sync-worker's view of connections from ``calsync.connections.v1``.

Snapshots are whole states with a version: an older one than the view holds changes nothing (a
redelivery, a replay). Each applied snapshot re-plans the connection's calendars; the subscription
manager and the delta runner act on the plan. A tombstone erases the connection.
"""

from __future__ import annotations

import logging
from uuid import UUID

from calsync_common.contracts.connections import ConnectionSnapshot
from calsync_common.kafka.consumer import ConsumedEvent, ConsumedTombstone, Message
from calsync_sync_worker.domain.calendars import plan
from calsync_sync_worker.service_layer.unit_of_work import SyncWork

log = logging.getLogger(__name__)


async def on_connection(work: SyncWork, message: Message) -> None:
    if isinstance(message, ConsumedTombstone):
        await work.sync.forget_connection(UUID(message.tombstone.key))
        return
    assert isinstance(message, ConsumedEvent)
    snapshot = message.envelope.data
    if not isinstance(snapshot, ConnectionSnapshot):
        log.warning(
            "unexpected event on the connections topic", extra={"type": message.envelope.type}
        )
        return
    if await work.sync.apply_snapshot(snapshot):
        await work.sync.apply_plan(plan(snapshot))
        # Writes parked for want of a usable connection or Linked Calendar may go through now.
        await work.write_back.wake_member(snapshot.sub_account_id, snapshot.user_id)
