"""Which calendars of a connection the sync-worker keeps in sync, and how that changes.

Pure: given a connection snapshot, the calendars to sync are its Conflict Calendars and its
Linked Calendar (events are read from both; bookings are written to the latter). A connection
that needs reauthorization keeps its calendars (and their delta links, so reconnecting needs no
full re-import) but pauses them; a disconnected one wants none.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from calsync_common.contracts.connections import ConnectionSnapshot


@dataclass(frozen=True)
class CalendarPlan:
    connection_id: UUID
    #: Calendars to sync now.
    active: frozenset[str]
    #: Calendars kept but paused (the connection needs reauthorization).
    paused: frozenset[str]

    @property
    def wanted(self) -> frozenset[str]:
        return self.active | self.paused


def calendars_of(snapshot: ConnectionSnapshot) -> frozenset[str]:
    chosen = set(snapshot.conflict_calendar_ids)
    if snapshot.linked_calendar_id is not None:
        chosen.add(snapshot.linked_calendar_id)
    return frozenset(chosen)


def plan(snapshot: ConnectionSnapshot) -> CalendarPlan:
    if snapshot.status == "disconnected":
        return CalendarPlan(snapshot.connection_id, frozenset(), frozenset())
    chosen = calendars_of(snapshot)
    if snapshot.status == "reauth_required":
        return CalendarPlan(snapshot.connection_id, frozenset(), chosen)
    return CalendarPlan(snapshot.connection_id, chosen, frozenset())
