"""A full read of a calendar's window (the periodic one, or the resync after ``410 Gone``).

A full read lists every instance in the window, so whatever the projection holds that the read did
not list is gone. The contract carries that as a resync sequence (Started, pages of the ids
present, Completed); this module derives the ids from the normalised batches of the read, and
refuses to when an instance was held back for want of its series master: it is present, and
leaving it out of the pages would remove it from the projection.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.calendar_events import CalendarEventUpserted, resync_events
from calsync_sync_worker.domain.normalize import NormalizedBatch, SyncWindow


class IncompleteFullRead(RuntimeError):
    """Instances of the read were held back (their series masters are missing)."""

    def __init__(self, missing_master_ids: Iterable[str]) -> None:
        self.missing_master_ids = tuple(missing_master_ids)
        super().__init__(f"full read incomplete: series masters {self.missing_master_ids} missing")


def present_event_ids(batches: Iterable[NormalizedBatch]) -> list[str]:
    """Ids of the instances present in the window after the read's batches, in order.

    The last record of an id decides: upserted means present, removed (cancelled, tombstoned,
    outside the window) means absent. Raises :class:`IncompleteFullRead` if any batch held back
    instances.
    """
    present: dict[str, bool] = {}
    missing: dict[str, None] = {}
    for batch in batches:
        missing.update(dict.fromkeys(batch.missing_master_ids))
        for event in batch.events:
            present.pop(event.event_id, None)
            present[event.event_id] = isinstance(event, CalendarEventUpserted)
    if missing:
        raise IncompleteFullRead(missing)
    return [event_id for event_id, here in present.items() if here]


def full_read_events(
    batches: Iterable[NormalizedBatch],
    *,
    connection_id: UUID,
    calendar_id: str,
    window: SyncWindow,
    observed_at: datetime,
    resync_id: UUID,
) -> list[EventPayload]:
    """What a full read publishes, in order: ``CalendarResyncStarted``, every record of the read,
    the pages of the ids present, ``CalendarResyncCompleted``."""
    batches = list(batches)
    resync = resync_events(
        connection_id,
        calendar_id,
        window.start,
        window.end,
        present_event_ids(batches),
        observed_at,
        resync_id,
    )
    records = [event for batch in batches for event in batch.events]
    return [resync[0], *records, *resync[1:]]
