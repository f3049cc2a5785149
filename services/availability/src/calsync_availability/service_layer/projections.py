"""The busy projection's consumers: connections, calendar events and sync status.

Each handler runs in the consumer runner's batch transaction (offsets, effects and any
``BookingConflictDetected`` in the outbox commit together). The runner already drops records
whose ``ce_sequence`` it applied for their key; the projection keeps its own per-calendar
sequence as well, so an older record can never undo a newer one (a removal stays a removal).

``apply_calendar_records`` takes any number of records of the calendar-events topic and writes
runs of upserts and removals with one statement each: the per-record handler is the one-record
case, and a batch handler would pass a whole batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

from calsync_availability.adapters.projection_repository import NewConflict
from calsync_availability.domain.projection import (
    ConnectionView,
    EventChange,
    after_page,
    change_of,
    completes,
    latest_per_event,
)
from calsync_availability.service_layer.unit_of_work import AvailabilityWork
from calsync_common.contracts.bookings import BookingConflictDetected
from calsync_common.contracts.calendar_events import (
    CalendarEventRemoved,
    CalendarEventUpserted,
    CalendarResyncCompleted,
    CalendarResyncPage,
    CalendarResyncStarted,
)
from calsync_common.contracts.connections import ConnectionSnapshot
from calsync_common.contracts.sync_status import CalendarSyncStatus
from calsync_common.kafka.consumer import ConsumedEvent, ConsumedTombstone, Message

log = logging.getLogger(__name__)


# --- calsync.connections.v1 ---------------------------------------------------------------------


async def on_connection(work: AvailabilityWork, message: Message) -> None:
    repo = work.projection
    if isinstance(message, ConsumedTombstone):
        connection_id = _uuid(message.tombstone.key)
        if connection_id is None:
            log.warning("tombstone with a key that is no connection id")
            return
        await repo.lock_calendar_tables()
        await repo.lock_member_of(connection_id)
        await repo.forget_connection(connection_id)
        # Resolves what was open (the events are gone); opens nothing.
        await repo.reconcile_connection(connection_id, datetime.now(UTC))
        return
    snapshot = message.envelope.data
    if not isinstance(snapshot, ConnectionSnapshot):
        log.info("ignored on the connections topic", extra={"type": message.envelope.type})
        return
    view = ConnectionView.of(snapshot)
    await repo.lock_calendar_tables()
    if not await repo.apply_snapshot(view):
        return  # older than what is stored: a replay or a re-send
    await repo.lock_member(view.sub_account_id, view.user_id)
    await repo.release_unsynced(view.connection_id, view.synced_calendars)
    opened = await repo.reconcile_connection(view.connection_id, view.changed_at)
    await _publish(work, opened, view.changed_at)


# --- calsync.calendar-events.v1 -----------------------------------------------------------------


async def on_calendar_event(work: AvailabilityWork, message: Message) -> None:
    await apply_calendar_records(work, [message])


async def apply_calendar_records(work: AvailabilityWork, messages: Sequence[Message]) -> None:
    """Apply records of one or more calendars in their order."""
    await work.projection.enter_calendar_tables()
    run: list[EventChange] = []
    for message in messages:
        if not isinstance(message, ConsumedEvent):
            continue  # the topic is not compacted: a tombstone means nothing here
        data = message.envelope.data
        sequence = message.envelope.sequence or 0
        if isinstance(data, CalendarEventUpserted | CalendarEventRemoved):
            run.append(change_of(data, sequence))
            continue
        await _apply_run(work, run)
        run = []
        if isinstance(data, CalendarResyncStarted | CalendarResyncPage | CalendarResyncCompleted):
            await _apply_resync(work, data, sequence)
        # Anything else (BookingEventChangedInOutlook: the bookings consumer's) is not ours.
    await _apply_run(work, run)


async def _apply_run(work: AvailabilityWork, run: list[EventChange]) -> None:
    if not run:
        return
    changes = latest_per_event(run)
    touched = await work.projection.apply_event_changes(changes)
    if touched:
        at = max(c.observed_at for c in run if c.observed_at is not None)
        opened = await work.projection.reconcile_events(touched, at)
        await _publish(work, opened, at)


async def _apply_resync(
    work: AvailabilityWork,
    data: CalendarResyncStarted | CalendarResyncPage | CalendarResyncCompleted,
    sequence: int,
) -> None:
    repo = work.projection
    connection_id, calendar_id = data.connection_id, data.calendar_id
    if not await repo.advance(connection_id, calendar_id, sequence):
        return
    if isinstance(data, CalendarResyncStarted):
        window = (data.window_start, data.window_end)
        await repo.start_resync(connection_id, calendar_id, data.resync_id, window)
        return
    progress = await repo.resync_progress(connection_id, calendar_id)
    if isinstance(data, CalendarResyncPage):
        after = after_page(progress, data)
        if after is not None:
            await repo.record_page(connection_id, calendar_id, after, data.event_ids)
        return
    if completes(progress, data):
        await repo.lock_member_of(connection_id)
        removed = await repo.remove_unlisted(connection_id, calendar_id)
        await repo.end_resync(connection_id, calendar_id)
        opened = await repo.reconcile_events(removed, data.observed_at)
        await _publish(work, opened, data.observed_at)
    else:
        log.warning(
            "resync seen incomplete: nothing removed",
            extra={"connection_id": str(connection_id), "resync_id": str(data.resync_id)},
        )
        await repo.end_resync(connection_id, calendar_id)


# --- calsync.sync-status.v1 ---------------------------------------------------------------------


async def on_sync_status(work: AvailabilityWork, message: Message) -> None:
    repo = work.projection
    await repo.enter_calendar_tables()
    if isinstance(message, ConsumedTombstone):
        head, _, calendar_id = message.tombstone.key.partition("/")
        connection_id = _uuid(head)
        if connection_id is not None and calendar_id:
            await repo.forget_freshness(connection_id, calendar_id)
        return
    status = message.envelope.data
    if not isinstance(status, CalendarSyncStatus):
        log.info("ignored on the sync-status topic", extra={"type": message.envelope.type})
        return
    await repo.apply_freshness(
        status.connection_id,
        status.calendar_id,
        status.status,
        status.subscription,
        status.last_synced_at,
        status.last_error,
        status.changed_at,
    )


# --- helpers -------------------------------------------------------------------------------------


async def _publish(work: AvailabilityWork, opened: list[NewConflict], at: datetime) -> None:
    for c in opened:
        event = BookingConflictDetected.model_validate(
            {
                "booking_id": c.booking_id,
                "version": c.booking_version,
                "sub_account_id": c.sub_account_id,
                "user_id": c.user_id,
                "booking_calendar_id": c.booking_calendar_id,
                "occurred_at": at,
                "start": c.booking_start,
                "end": c.booking_end,
                "connection_id": c.connection_id,
                "calendar_id": c.calendar_id,
                "event_id": c.event_id,
                "show_as": c.show_as,
                "conflict_start": c.start,
                "conflict_end": c.end,
            }
        )
        await work.outbox.add(event)


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None
