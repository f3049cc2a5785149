"""Import point that loads every payload module, so the registry is complete."""

from __future__ import annotations

from calsync_common.contracts import (  # noqa: F401  (imported for their @register side effect)
    booking_writebacks,
    bookings,
    calendar_events,
    connections,
    notifications,
    sync_status,
)
from calsync_common.contracts.base import EventPayload, payload_model, registered_models
from calsync_common.contracts.topics import CATALOGUE, Topic

__all__ = ["CATALOGUE", "EventPayload", "Topic", "payload_model", "registered_models"]
