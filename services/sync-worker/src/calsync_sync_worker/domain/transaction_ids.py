"""The tag calsync puts on the events it writes to a Linked Calendar, and how an echo is told.

The write-back creates each booking's event with ``transactionId = "calsync-" + booking id``. Graph
keeps a transactionId for the event's life and returns it in calendarView/delta items (unlike
extended properties or open extensions, which delta cannot ``$expand``), so when the written event
comes back through delta it is recognised as calsync's own and carries its ``booking_id``: the
availability service then knows it is a booking, not foreign busy time.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID

CALSYNC_TRANSACTION_PREFIX: Final = "calsync-"


def transaction_id_for_booking(booking_id: UUID) -> str:
    """The transactionId the write-back creates a booking's event with."""
    return f"{CALSYNC_TRANSACTION_PREFIX}{booking_id}"


def booking_id_from_transaction_id(transaction_id: str | None) -> UUID | None:
    """The booking an event was written for, or None for an event calsync did not create.

    Only the prefix followed by a UUID in its canonical hyphenated form (any case) counts: a
    transactionId another app chose, or calsync's prefix followed by anything else, is not a
    calsync booking.
    """
    if not transaction_id or not transaction_id.startswith(CALSYNC_TRANSACTION_PREFIX):
        return None
    text = transaction_id.removeprefix(CALSYNC_TRANSACTION_PREFIX)
    try:
        booking_id = UUID(text)
    except ValueError:
        return None
    return booking_id if str(booking_id) == text.lower() else None
