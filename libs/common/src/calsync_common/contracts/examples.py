"""One valid example of every payload model (used by docs, tests and benchmarks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.booking_writebacks import BookingWriteBackRecorded
from calsync_common.contracts.bookings import (
    BookingCancelled,
    BookingConfirmed,
    BookingConflictDetected,
    BookingRescheduled,
)
from calsync_common.contracts.calendar_events import (
    BookingEventChangedInOutlook,
    CalendarEventRemoved,
    CalendarEventUpserted,
    CalendarResyncCompleted,
    CalendarResyncPage,
    CalendarResyncStarted,
)
from calsync_common.contracts.connections import ConnectionSnapshot, MicrosoftAccount
from calsync_common.contracts.notifications import GraphChangeReceived, GraphLifecycleReceived
from calsync_common.contracts.sync_status import CalendarSyncStatus

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
CONN = UUID("0b6f8f0e-5c1e-4e47-9a53-3c1f5d0c2a11")
BOOKING = UUID("7e163156-7762-4beb-a1c6-729ea81755a7")
RESYNC = UUID("3d0c7a52-2f55-4c8e-8f1e-6a9b0d4e5c21")


def examples() -> list[EventPayload]:
    booking = {
        "booking_id": BOOKING,
        "version": 1,
        "sub_account_id": "sub-1",
        "user_id": "user-1",
        "booking_calendar_id": "cal-1",
        "occurred_at": NOW,
    }
    resync = {"connection_id": CONN, "calendar_id": "AAMkAD-linked", "resync_id": RESYNC}
    return [
        ConnectionSnapshot(
            connection_id=CONN,
            version=3,
            sub_account_id="sub-1",
            user_id="user-1",
            account=MicrosoftAccount(
                tenant_id="t", object_id="o", username="adele@contoso.example", is_personal=False
            ),
            status="active",
            sync_preference="two_way",
            linked_calendar_id="AAMkAD-linked",
            conflict_calendar_ids=("AAMkAD-linked", "AAMkAD-other"),
            changed_at=NOW,
        ),
        GraphChangeReceived(
            subscription_id="sub-id",
            connection_id=CONN,
            calendar_id="AAMkAD-linked",
            tenant_id="t",
            change_type="updated",
            resource="Users/o/Events/AAMkAD-e1",
            resource_id="AAMkAD-e1",
            subscription_expires_at=NOW + timedelta(days=2),
            received_at=NOW,
        ),
        GraphLifecycleReceived(
            subscription_id="sub-id",
            connection_id=CONN,
            calendar_id="AAMkAD-linked",
            tenant_id="t",
            lifecycle_event="missed",
            subscription_expires_at=None,
            received_at=NOW,
        ),
        CalendarEventUpserted(
            connection_id=CONN,
            calendar_id="AAMkAD-linked",
            event_id="AAMkAD-e1",
            start=NOW,
            end=NOW + timedelta(hours=1),
            show_as="busy",
            observed_at=NOW,
        ),
        CalendarEventRemoved(
            connection_id=CONN, calendar_id="AAMkAD-linked", event_id="AAMkAD-e1", observed_at=NOW
        ),
        CalendarResyncStarted(
            **resync, window_start=NOW, window_end=NOW + timedelta(days=90), observed_at=NOW
        ),
        CalendarResyncPage(**resync, page=0, event_ids=("AAMkAD-e1", "AAMkAD-e2")),
        CalendarResyncCompleted(**resync, pages=1, total_event_ids=2, observed_at=NOW),
        BookingConfirmed(**booking, start=NOW, end=NOW + timedelta(minutes=30), title="Intro call"),
        BookingRescheduled(**booking, start=NOW, end=NOW + timedelta(minutes=45)),
        BookingCancelled(**booking),
        BookingConflictDetected(
            **booking,
            start=NOW,
            end=NOW + timedelta(minutes=30),
            connection_id=CONN,
            calendar_id="AAMkAD-other",
            event_id="AAMkAD-e9",
            show_as="busy",
            conflict_start=NOW + timedelta(minutes=15),
            conflict_end=NOW + timedelta(hours=1),
        ),
        BookingWriteBackRecorded(
            booking_id=BOOKING,
            booking_version=1,
            outcome="written",
            connection_id=CONN,
            calendar_id="AAMkAD-linked",
            event_id="AAMkAD-booked",
            occurred_at=NOW,
        ),
        BookingEventChangedInOutlook(
            connection_id=CONN,
            calendar_id="AAMkAD-linked",
            event_id="AAMkAD-booked",
            booking_id=BOOKING,
            booking_version=1,
            change="moved",
            start=NOW + timedelta(hours=2),
            end=NOW + timedelta(hours=2, minutes=30),
            observed_at=NOW,
        ),
        CalendarSyncStatus(
            connection_id=CONN,
            calendar_id="AAMkAD-linked",
            status="healthy",
            subscription="active",
            last_synced_at=NOW,
            changed_at=NOW,
        ),
    ]
