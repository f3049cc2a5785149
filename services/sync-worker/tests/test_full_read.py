"""A full read of the window (periodic, or after 410 Gone) as the contract's resync sequence."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from calsync_common.contracts.calendar_events import (
    CalendarEventRemoved,
    CalendarEventUpserted,
    CalendarResyncCompleted,
    CalendarResyncPage,
    CalendarResyncStarted,
)
from calsync_sync_worker.domain.full_read import (
    IncompleteFullRead,
    full_read_events,
    present_event_ids,
)
from calsync_sync_worker.domain.normalize import NormalizedBatch, SyncWindow, normalize_delta_items
from calsync_sync_worker.domain.series import MappingMasterLookup

CONNECTION = UUID("9b7c3c1e-6f0e-4c41-9d0e-2f6a0d3f4a11")
OBSERVED = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW = SyncWindow(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
RESYNC = UUID("0f2b1a8e-5d43-4b0c-8a57-3c2d1e0f9a88")


def item(event_id: str, day: str, **fields: Any) -> dict[str, Any]:
    """A one-hour event on ``day`` ("MM-DD") of 2026."""
    return {
        "id": event_id,
        "type": "singleInstance",
        "showAs": "busy",
        "start": {"dateTime": f"2026-{day}T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"2026-{day}T10:00:00", "timeZone": "UTC"},
        **fields,
    }


def page(*items: dict[str, Any], masters: dict[str, Any] | None = None) -> NormalizedBatch:
    return normalize_delta_items(
        items,
        connection_id=CONNECTION,
        calendar_id="cal",
        window=WINDOW,
        mailbox_time_zone=None,
        observed_at=OBSERVED,
        masters=MappingMasterLookup(masters or {}),
    )


def test_present_ids_follow_the_last_record_of_each_id() -> None:
    first = page(item("A", "03-10"), item("B", "03-11"), item("gone-before", "02-10"))
    second = page(item("C", "03-12"), item("A", "03-13", isCancelled=True), item("B", "03-14"))
    assert present_event_ids([first, second]) == ["C", "B"]  # in order of last record


def test_a_read_with_held_back_occurrences_cannot_resync() -> None:
    occurrence = item("O", "03-10", type="occurrence", seriesMasterId="M")
    batch = page(item("A", "03-10"), occurrence)
    with pytest.raises(IncompleteFullRead) as caught:
        present_event_ids([batch])
    assert caught.value.missing_master_ids == ("M",)


def test_full_read_events_in_publishing_order() -> None:
    batches = [page(item("A", "03-10"), item("late", "04-10")), page(item("B", "03-11"))]
    events = full_read_events(
        batches,
        connection_id=CONNECTION,
        calendar_id="cal",
        window=WINDOW,
        observed_at=OBSERVED,
        resync_id=RESYNC,
    )
    assert [type(e) for e in events] == [
        CalendarResyncStarted,
        CalendarEventUpserted,
        CalendarEventRemoved,  # outside the window
        CalendarEventUpserted,
        CalendarResyncPage,
        CalendarResyncCompleted,
    ]
    started, pages, completed = events[0], events[4], events[5]
    assert isinstance(started, CalendarResyncStarted)
    assert (started.window_start, started.window_end) == (WINDOW.start, WINDOW.end)
    assert isinstance(pages, CalendarResyncPage)
    assert pages.event_ids == ("A", "B")
    assert isinstance(completed, CalendarResyncCompleted)
    assert (completed.pages, completed.total_event_ids) == (1, 2)
    assert {e.partition_key() for e in events} == {f"{CONNECTION}/cal"}


def test_an_empty_window_resyncs_to_nothing() -> None:
    events = full_read_events(
        [page()],
        connection_id=CONNECTION,
        calendar_id="cal",
        window=WINDOW,
        observed_at=OBSERVED,
        resync_id=RESYNC,
    )
    assert [type(e).__name__ for e in events] == [
        "CalendarResyncStarted",
        "CalendarResyncCompleted",
    ]
