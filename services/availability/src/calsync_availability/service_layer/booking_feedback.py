"""What the sync-worker reports back about bookings, applied to them (two consumers).

* ``calsync.booking-writebacks.v1`` (:func:`on_writeback`): the outcome of writing each booking
  version to its member's Linked Calendar; the latest per version is kept and shown on the
  booking.
* ``calsync.calendar-events.v1``, ``BookingEventChangedInOutlook`` only, in its own consumer group
  (:class:`TwoWayChanges`): the person moved or deleted, in Outlook, the event calsync wrote for a
  booking. Applied only when the member's current connection is that event's and its sync
  preference is ``two_way`` (the sync-worker publishes only then; checked again here), and only
  when ``booking_version`` is the booking's current version: a change to an outdated write is
  ignored (the sync-worker is already writing the newer version over it).

  - ``deleted`` cancels the booking (every hold of it, as the API's DELETE does).
  - ``moved`` reschedules it to the new times, taken under the members' locks as the API does,
    with these rules. Another confirmed booking of a member in the way: the hard guarantee
    wins, the move is *rejected* and the booking is re-published at its own times (a version
    bump, so the write-back puts the Outlook event back). Blocking Outlook time in the way: the
    move is *accepted* (the person chose that time themselves, in the very calendar that
    holds the other event) and each overlap is recorded as a conflict with a
    ``BookingConflictDetected`` event. Working hours, buffers, the slot grid and the stale policy
    are the booking page's rules and do not apply to a change the person made in Outlook.

  What became of the change is kept on the booking (``outlook_change``). Every change publishes
  its ``calsync.bookings.v1`` events through the outbox, in the consumer's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from calsync_availability.adapters import bookings_repository as repo
from calsync_availability.domain.bookings import (
    MAX_BOOKING_LENGTH,
    WriteBack,
    conflicts_of,
)
from calsync_availability.domain.intervals import Interval
from calsync_availability.service_layer.bookings import (
    AvailabilitySources,
    cancel,
    move,
    report_conflicts,
)
from calsync_common.contracts.booking_writebacks import BookingWriteBackRecorded
from calsync_common.contracts.calendar_events import BookingEventChangedInOutlook
from calsync_common.kafka.consumer import ConsumedEvent, Message
from calsync_common.postgres.uow import PostgresWork

log = logging.getLogger(__name__)

WRITEBACKS_GROUP = "calsync-availability.booking-writebacks"
TWO_WAY_GROUP = "calsync-availability.two-way"

TwoWayOutcome = Literal[
    "unknown_booking",
    "not_two_way",
    "stale_version",
    "already_cancelled",
    "unchanged",
    "cancelled",
    "moved",
    "rejected",
]


async def on_writeback(work: PostgresWork, message: Message) -> None:
    if not isinstance(message, ConsumedEvent):
        return
    event = message.envelope.data
    if not isinstance(event, BookingWriteBackRecorded):
        log.warning(
            "unexpected event on the write-backs topic", extra={"type": message.envelope.type}
        )
        return
    await repo.record_writeback(
        work.connection,
        WriteBack(
            booking_id=event.booking_id,
            booking_version=event.booking_version,
            outcome=event.outcome,
            reason=event.reason,
            will_retry=event.will_retry,
            occurred_at=event.occurred_at,
            event_id=event.event_id,
            connection_id=event.connection_id,
            calendar_id=event.calendar_id,
        ),
    )


class TwoWayChanges:
    """The handler of the two-way consumer (every other calendar event is skipped)."""

    def __init__(self, sources: AvailabilitySources, clock: Callable[[], datetime]) -> None:
        self.sources = sources
        self.clock = clock

    async def __call__(self, work: PostgresWork, message: Message) -> None:
        if not isinstance(message, ConsumedEvent):
            return
        change = message.envelope.data
        if isinstance(change, BookingEventChangedInOutlook):
            outcome = await self.apply(work, change)
            log.info(
                "two-way change",
                extra={"booking_id": str(change.booking_id), "outcome": outcome},
            )

    async def apply(
        self, work: PostgresWork, change: BookingEventChangedInOutlook
    ) -> TwoWayOutcome:
        conn = work.connection
        found = await repo.group_of_hold(conn, change.booking_id)
        if found is None:
            return "unknown_booking"
        sub_account_id, group_id = found
        booking = await repo.load_group(conn, sub_account_id, group_id)
        assert booking is not None
        hold = next(h for h in booking.holds if h.booking_id == change.booking_id)
        preference = await self.sources.sync_preference(
            conn, sub_account_id, hold.user_id, change.connection_id
        )
        if preference != "two_way":
            return "not_two_way"
        await repo.lock_members(conn, sub_account_id, booking.user_ids)
        booking = await repo.load_group(conn, sub_account_id, group_id, lock=True)
        assert booking is not None
        if booking.version != change.booking_version:
            return "stale_version"
        if booking.status == "cancelled":
            return "already_cancelled"
        now = self.clock()
        note: dict[str, Any] = {
            "change": change.change,
            "booking_id": str(change.booking_id),
            "booking_version": change.booking_version,
            "event_id": change.event_id,
            "observed_at": change.observed_at.isoformat(),
        }
        if change.change == "deleted":
            await cancel(work, booking, now, "outlook", {**note, "outcome": "applied"})
            return "cancelled"
        assert change.start is not None
        assert change.end is not None
        start, end = change.start, change.end
        note |= {"start": start.isoformat(), "end": end.isoformat()}
        if (start, end) == (booking.start, booking.end):
            return "unchanged"
        reason = None
        if not start < end or end - start > MAX_BOOKING_LENGTH:
            reason = "invalid_booking_time"
        else:
            taken = await repo.confirmed_busy(conn, sub_account_id, booking.user_ids, start, end)
            if conflicts_of(Interval(start, end), taken, ignore_group=[booking.group_id]):
                reason = "slot_unavailable"
        if reason is not None:
            # Re-published at its own times: the write-back puts the Outlook event back.
            rejected = {**note, "outcome": "rejected", "reason": reason}
            await move(work, booking, booking.start, booking.end, now, booking.changed_by, rejected)
            return "rejected"
        version = await move(
            work, booking, start, end, now, "outlook", {**note, "outcome": "applied"}
        )
        moved = await repo.load_group(conn, sub_account_id, group_id)
        assert moved is not None
        outlook = await self.sources.outlook_busy(conn, sub_account_id, moved.user_ids, start, end)
        await report_conflicts(work, moved, version, outlook, now)
        return "moved"
