"""What a delta round saw of calsync's own events: echoes, or changes the user made in Outlook.

calsync's writes come back through delta, carrying their booking (``transactionId``). An echo of
what calsync wrote is nothing new. Times other than the ones written, or the event gone, mean the
user moved or deleted it in Outlook: the row then records what Outlook holds, and under two-way
sync a :class:`BookingEventChangedInOutlook` is published (in the round's transaction, on the
calendar's key) for the availability service to reschedule or cancel the booking. Under one-way
sync the booking stays as it is and nothing is published.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.calendar_events import (
    BookingEventChangedInOutlook,
    CalendarEventRemoved,
    CalendarEventUpserted,
)
from calsync_sync_worker.domain.normalize import SyncWindow
from calsync_sync_worker.domain.write_back import Wanted, outlook_change
from calsync_sync_worker.service_layer.unit_of_work import SyncWork


async def booking_changes(
    work: SyncWork,
    *,
    connection_id: UUID,
    calendar_id: str,
    records: Sequence[EventPayload],
    full_read: SyncWindow | None,
    observed_at: datetime,
) -> list[EventPayload]:
    """The changes users made to calsync's events among ``records`` (one round's)."""
    echoes = {
        e.event_id: e
        for e in records
        if isinstance(e, CalendarEventUpserted) and e.booking_id is not None
    }
    removed = {e.event_id for e in records if isinstance(e, CalendarEventRemoved)}
    removed -= echoes.keys()  # the last record of an id decides; upserts came after
    seen: list[tuple[Wanted, datetime | None, datetime | None]] = []
    if echoes:
        held = await work.write_back.by_booking(
            [e.booking_id for e in echoes.values() if e.booking_id is not None]
        )
        for event_id, echo in echoes.items():
            wanted = held.get(echo.booking_id) if echo.booking_id else None
            if wanted and wanted.connection_id == connection_id and wanted.event_id == event_id:
                gone = echo.is_cancelled
                seen.append((wanted, None if gone else echo.start, None if gone else echo.end))
    if removed:
        for wanted in (await work.write_back.by_event(connection_id, sorted(removed))).values():
            seen.append((wanted, None, None))
    if full_read is not None:  # a full read lists everything present: the rest is gone
        present = {e.event_id for e in records if isinstance(e, CalendarEventUpserted)}
        for wanted in await work.write_back.in_calendar(connection_id, calendar_id):
            start, end = wanted.written_start, wanted.written_end
            if (
                wanted.event_id not in present
                and wanted.event_id not in removed
                and start is not None
                and end is not None
                and full_read.overlaps(start, end)
            ):
                seen.append((wanted, None, None))
    if not seen:
        return []
    two_way = await work.write_back.sync_preference(connection_id) == "two_way"
    changes: list[EventPayload] = []
    for wanted, start, end in seen:
        deleted = start is None
        change = outlook_change(
            wanted, observed_at=observed_at, deleted=deleted, start=start, end=end
        )
        if change is None:
            continue
        await work.write_back.seen_in_outlook(wanted.booking_id, start=start, end=end)
        if two_way and wanted.written_version is not None and wanted.event_id is not None:
            changes.append(
                BookingEventChangedInOutlook(
                    connection_id=connection_id,
                    calendar_id=calendar_id,
                    event_id=wanted.event_id,
                    booking_id=wanted.booking_id,
                    booking_version=wanted.written_version,
                    change=change,
                    start=start,
                    end=end,
                    observed_at=observed_at,
                )
            )
    return changes
