"""What the sync-worker did with each booking version (``calsync.booking-writebacks.v1``).

One event per booking version the sync-worker settled, keyed per booking so they stay in order.
The availability service shows the latest one on the booking; a ``failed`` outcome with
``will_retry`` is followed by another outcome for the same version.
"""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from calsync_common.contracts.base import EventPayload, register
from calsync_common.contracts.calendar_events import EventId
from calsync_common.contracts.topics import BOOKING_WRITEBACKS

#: ``written``: the Linked Calendar holds the booking at this version's time (created or moved).
#: ``removed``: the cancelled booking's event is gone from the Linked Calendar.
#: ``failed``: Graph refused or could not be reached; ``reason`` says why.
#: ``skipped``: there is nowhere to write (``reason``: ``no_connection``, ``no_linked_calendar``,
#: ``connection_not_active``) and nothing will be retried until the connection changes.
WriteBackOutcome = Literal["written", "removed", "failed", "skipped"]


@register
class BookingWriteBackRecorded(EventPayload):
    """The outcome of writing one booking version to its owner's Linked Calendar."""

    event_type: ClassVar[str] = "dev.calsync.booking.writeback_recorded.v1"
    topic: ClassVar[str] = BOOKING_WRITEBACKS.name

    booking_id: UUID
    #: The booking version (``calsync.bookings.v1``) this outcome is about.
    booking_version: int = Field(ge=1)
    outcome: WriteBackOutcome
    #: A stable code (for example ``no_linked_calendar``, ``reauth_required``,
    #: ``ErrorAccessDenied``); None when written or removed.
    reason: str | None = Field(default=None, max_length=200)
    #: True when the sync-worker keeps trying this version (a transient failure).
    will_retry: bool = False
    connection_id: UUID | None = None
    calendar_id: str | None = None
    #: The Graph event that holds the booking (ImmutableId), when there is one.
    event_id: EventId | None = None
    occurred_at: AwareDatetime

    @model_validator(mode="after")
    def _reason_when_not_done(self) -> BookingWriteBackRecorded:
        if self.outcome in ("failed", "skipped") and not self.reason:
            raise ValueError(f"a {self.outcome} outcome needs a reason")
        if self.will_retry and self.outcome != "failed":
            raise ValueError("only a failed outcome can be retried")
        return self

    def partition_key(self) -> str:
        return str(self.booking_id)
