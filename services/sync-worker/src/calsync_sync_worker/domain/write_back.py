"""Writing bookings to the Linked Calendar: what to do with a booking, and how an echo is read.

A booking's row holds what the platform wants (its newest version) and what calsync last wrote
to Outlook. :func:`decide` picks the one Graph call that closes the gap, or why none can be made
now; :func:`outlook_change` tells a change the user made in Outlook from the echo of calsync's own
write. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal
from uuid import UUID

from calsync_sync_worker.domain.transaction_ids import transaction_id_for_booking

#: The single-value extended property that tags an event as calsync's (a String property in
#: calsync's own property set; the value is the booking id). Graph's format:
#: ``"String {guid} Name <name>"``.
BOOKING_PROPERTY_ID = "String {6f0b5a8e-3c4d-4e1a-9b7f-2d8c1e5a4b30} Name calsync.booking_id"
DEFAULT_TITLE = "Booking"


class Step(Enum):
    CREATE = "create"  # POST to the Linked Calendar with the booking's transactionId
    UPDATE = "update"  # PATCH the event calsync wrote (times and subject)
    DELETE = "delete"  # DELETE the event calsync wrote (the booking was cancelled)
    NOTHING_TO_REMOVE = "nothing_to_remove"  # cancelled before anything was written
    SKIP = "skip"  # nowhere to write now; parked until the member's connection changes


@dataclass(frozen=True)
class Target:
    """The member's Outlook connection as the sync-worker's projection knows it."""

    connection_id: UUID
    status: str
    linked_calendar_id: str | None


@dataclass(frozen=True)
class Wanted:
    """A booking's row: what it wants and where calsync wrote it."""

    booking_id: UUID
    version: int
    cancelled: bool
    start: datetime | None
    end: datetime | None
    title: str | None
    connection_id: UUID | None
    calendar_id: str | None
    event_id: str | None
    written_version: int | None
    written_start: datetime | None
    written_end: datetime | None
    written_at: datetime | None
    failures: int


@dataclass(frozen=True)
class Decision:
    step: Step
    reason: str | None = None
    connection_id: UUID | None = None
    calendar_id: str | None = None


def decide(wanted: Wanted, target: Target | None) -> Decision:
    """The Graph call that makes Outlook hold ``wanted``, given the member's connection."""
    if wanted.cancelled:
        if wanted.event_id is None:
            return Decision(Step.NOTHING_TO_REMOVE)
        # The event lives in the mailbox of the connection that wrote it.
        if target is None or target.connection_id != wanted.connection_id:
            return Decision(Step.SKIP, "no_connection")
        if target.status != "active":
            return Decision(Step.SKIP, "connection_not_active")
        return Decision(Step.DELETE, None, wanted.connection_id, wanted.calendar_id)
    if wanted.start is None or wanted.end is None:
        # Only a cancellation was ever seen of this booking: nothing to place.
        return Decision(Step.NOTHING_TO_REMOVE)
    if target is None:
        return Decision(Step.SKIP, "no_connection")
    if target.status != "active":
        return Decision(Step.SKIP, "connection_not_active")
    if wanted.event_id is not None and wanted.connection_id == target.connection_id:
        return Decision(Step.UPDATE, None, target.connection_id, wanted.calendar_id)
    if target.linked_calendar_id is None:
        return Decision(Step.SKIP, "no_linked_calendar")
    return Decision(Step.CREATE, None, target.connection_id, target.linked_calendar_id)


def event_body(wanted: Wanted, *, create: bool) -> dict[str, Any]:
    """The Graph event for the booking: times in UTC, busy; tagged and idempotent on create."""
    assert wanted.start is not None
    assert wanted.end is not None
    body: dict[str, Any] = {
        "subject": wanted.title or DEFAULT_TITLE,
        "start": _graph_time(wanted.start),
        "end": _graph_time(wanted.end),
        "showAs": "busy",
    }
    if create:
        body["transactionId"] = transaction_id_for_booking(wanted.booking_id)
        body["singleValueExtendedProperties"] = [
            {"id": BOOKING_PROPERTY_ID, "value": str(wanted.booking_id)}
        ]
    return body


def _graph_time(instant: datetime) -> dict[str, str]:
    utc = instant.astimezone(UTC).replace(tzinfo=None)
    return {"dateTime": utc.isoformat(timespec="seconds"), "timeZone": "UTC"}


OutlookChange = Literal["moved", "deleted"]


def outlook_change(
    wanted: Wanted,
    *,
    observed_at: datetime,
    deleted: bool,
    start: datetime | None = None,
    end: datetime | None = None,
) -> OutlookChange | None:
    """Whether what delta saw of a booking's event is the user's change (not calsync's echo).

    An observation read before calsync's last write is outdated (the write may not have been
    visible yet): never a change. A cancelled booking's event going away is calsync's own delete.
    Otherwise a deletion is the user's, and so are times other than the ones calsync wrote.
    """
    if wanted.cancelled or wanted.written_at is None or wanted.event_id is None:
        return None
    if observed_at <= wanted.written_at:
        return None
    if deleted:
        return "deleted"
    if start is None or end is None:
        return None
    if (start, end) != (wanted.written_start, wanted.written_end):
        return "moved"
    return None
