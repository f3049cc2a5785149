"""Keeping the sync-worker's view of connections from ``calsync.connections.v1``.

Snapshots are whole states with a version: an older one than the view holds changes nothing (a
redelivery, a replay). Each applied snapshot re-plans the connection's calendars; the subscription
manager and the delta runner act on the plan. A tombstone erases the connection.
"""

from __future__ import annotations

import logging
from uuid import UUID

from calsync_common.contracts.connections import ConnectionSnapshot
from calsync_common.contracts.sync_status import CalendarSyncStatus
from calsync_common.kafka.consumer import ConsumedEvent, ConsumedTombstone, Message
from calsync_sync_worker.domain.calendars import CalendarPlan, plan
from calsync_sync_worker.service_layer.unit_of_work import SyncWork

log = logging.getLogger(__name__)


async def _report_stopped(
    work: SyncWork, snapshot: ConnectionSnapshot, planned: CalendarPlan, before: set[str]
) -> None:
    """Calendars no longer kept fresh say so at once: paused ones (the connection needs a new
    sign-in) are ``reauth_required``, ones let go of are ``stopped``; rounds report the rest."""
    stopped = dict.fromkeys(before - planned.wanted, "stopped")
    paused = dict.fromkeys(planned.paused, "reauth_required")
    if not stopped and not paused:
        return
    synced = await work.sync.last_synced(snapshot.connection_id)
    for calendar_id, status in sorted({**stopped, **paused}.items()):
        await work.outbox.add(
            CalendarSyncStatus(
                connection_id=snapshot.connection_id,
                calendar_id=calendar_id,
                status=status,
                subscription="stopped",
                last_synced_at=synced.get(calendar_id),
                last_error="connection needs a new sign-in"
                if status == "reauth_required"
                else None,
                changed_at=snapshot.changed_at,
            )
        )


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
        before = {
            c
            for c, (wanted, _) in (await work.sync.calendars(snapshot.connection_id)).items()
            if wanted
        }
        planned = plan(snapshot)
        await work.sync.apply_plan(planned)
        await _report_stopped(work, snapshot, planned, before)
        # Writes parked for want of a usable connection or Linked Calendar may go through now.
        await work.write_back.wake_member(snapshot.sub_account_id, snapshot.user_id)
