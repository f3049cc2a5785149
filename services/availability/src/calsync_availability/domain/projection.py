"""The busy projection's rules (pure): what is kept, what blocks, when a resync removes.

* An Outlook event **blocks** when its ``showAs`` is one the connection blocks on, its calendar is
  one of the connection's Conflict Calendars, the connection is not disconnected, and it is not
  calsync's own write-back echo (``booking_id`` set). ``free`` never blocks; free events and echoes
  are kept all the same (the product imports them).
* An event is **kept** while its calendar is synced: the connection is unknown yet (its snapshot
  travels on another topic and may come later), or it is neither erased nor disconnected and the
  calendar is its Linked or one of its Conflict Calendars. Whatever is not kept is deleted, so a
  replay from the beginning ends with the same rows whatever the interleaving of the topics.
* Per calendar only a newer ``ce_sequence`` applies; removals and cancellations delete.
* A resync removes the unlisted events of its window only when it was seen whole.

The adapters express the same rules in SQL (``adapters/projection_repository.py``,
``adapters/busy_queries.py``); ``tests/test_projections.py`` holds both to these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from calsync_common.contracts.calendar_events import (
    CalendarEventRemoved,
    CalendarEventUpserted,
    CalendarResyncCompleted,
    CalendarResyncPage,
)
from calsync_common.contracts.connections import ConnectionSnapshot

#: Sync health values under which a calendar's copy cannot be trusted to be current.
UNHEALTHY_SYNC = frozenset({"stale", "reauth_required", "failed", "stopped"})
#: Subscription states under which changes may go unnoticed.
UNWATCHED = frozenset({"missing", "stopped"})


@dataclass(frozen=True)
class ConnectionView:
    """What the projection keeps of a connection snapshot."""

    connection_id: UUID
    version: int
    sub_account_id: str
    user_id: str
    status: str
    sync_preference: str
    linked_calendar_id: str | None
    conflict_calendar_ids: tuple[str, ...]
    blocking_show_as: tuple[str, ...]
    time_zone: str | None
    changed_at: datetime

    @classmethod
    def of(cls, snapshot: ConnectionSnapshot) -> ConnectionView:
        return cls(
            connection_id=snapshot.connection_id,
            version=snapshot.version,
            sub_account_id=snapshot.sub_account_id,
            user_id=snapshot.user_id,
            status=snapshot.status,
            sync_preference=snapshot.sync_preference,
            linked_calendar_id=snapshot.linked_calendar_id,
            conflict_calendar_ids=tuple(snapshot.conflict_calendar_ids),
            blocking_show_as=tuple(snapshot.blocking_show_as),
            time_zone=snapshot.time_zone,
            changed_at=snapshot.changed_at,
        )

    @property
    def synced_calendars(self) -> frozenset[str]:
        """Calendars whose events are kept (the sync-worker syncs the same ones)."""
        if self.status == "disconnected":
            return frozenset()
        chosen = set(self.conflict_calendar_ids)
        if self.linked_calendar_id is not None:
            chosen.add(self.linked_calendar_id)
        return frozenset(chosen)


@dataclass(frozen=True)
class EventChange:
    """One event instance as a calendar-events record leaves it: present (upserted) or not
    (removed, cancelled)."""

    connection_id: UUID
    calendar_id: str
    event_id: str
    sequence: int
    present: bool
    start: datetime | None = None
    end: datetime | None = None
    show_as: str = "busy"
    is_all_day: bool = False
    booking_id: UUID | None = None
    observed_at: datetime | None = None

    @property
    def key(self) -> tuple[UUID, str, str]:
        return (self.connection_id, self.calendar_id, self.event_id)


def change_of(payload: CalendarEventUpserted | CalendarEventRemoved, sequence: int) -> EventChange:
    """The change a record makes; ``sequence`` is its ``ce_sequence`` (0 when it has none)."""
    if isinstance(payload, CalendarEventRemoved) or payload.is_cancelled:
        return EventChange(
            payload.connection_id,
            payload.calendar_id,
            payload.event_id,
            sequence,
            present=False,
            observed_at=payload.observed_at,
        )
    return EventChange(
        payload.connection_id,
        payload.calendar_id,
        payload.event_id,
        sequence,
        present=True,
        start=payload.start,
        end=payload.end,
        show_as=payload.show_as,
        is_all_day=payload.is_all_day,
        booking_id=payload.booking_id,
        observed_at=payload.observed_at,
    )


def latest_per_event(changes: Iterable[EventChange]) -> list[EventChange]:
    """The last change of each event instance (by sequence, then arrival), in arrival order of
    those last changes: applying them gives what applying all of them in order gives."""
    last: dict[tuple[UUID, str, str], EventChange] = {}
    for change in changes:
        kept = last.get(change.key)
        if kept is None or change.sequence >= kept.sequence:
            last.pop(change.key, None)
            last[change.key] = change
    return list(last.values())


def keeps(connection: ConnectionView | None, forgotten: bool, calendar_id: str) -> bool:
    """Whether events (and the freshness) of ``calendar_id`` are kept for this connection."""
    if forgotten:
        return False
    return connection is None or calendar_id in connection.synced_calendars


def applies(stored_sequence: int | None, sequence: int) -> bool:
    """Whether a record of a calendar applies after ``stored_sequence`` (the calendar's newest);
    a record without a sequence (0) always does."""
    return sequence == 0 or stored_sequence is None or sequence > stored_sequence


def blocks(
    connection: ConnectionView | None,
    calendar_id: str,
    show_as: str,
    booking_id: UUID | None,
) -> bool:
    """Whether an event of ``calendar_id`` with ``show_as`` holds its owner's time."""
    return (
        connection is not None
        and connection.status != "disconnected"
        and calendar_id in connection.conflict_calendar_ids
        and show_as != "free"
        and show_as in connection.blocking_show_as
        and booking_id is None
    )


@dataclass(frozen=True)
class ResyncProgress:
    """How much of one resync a calendar has seen."""

    resync_id: UUID
    next_page: int = 0
    listed: int = 0
    broken: bool = False


def after_page(progress: ResyncProgress | None, page: CalendarResyncPage) -> ResyncProgress | None:
    """The progress after a page (None: the page belongs to no resync this calendar started)."""
    if progress is None or progress.resync_id != page.resync_id:
        return None
    if progress.broken or page.page != progress.next_page:
        return ResyncProgress(progress.resync_id, progress.next_page, progress.listed, True)
    return ResyncProgress(
        progress.resync_id, progress.next_page + 1, progress.listed + len(page.event_ids)
    )


def completes(progress: ResyncProgress | None, completed: CalendarResyncCompleted) -> bool:
    """Whether the resync was seen whole: its start, every page in order, every id."""
    return (
        progress is not None
        and progress.resync_id == completed.resync_id
        and not progress.broken
        and progress.next_page == completed.pages
        and progress.listed == completed.total_event_ids
    )


# --- what the queries answer ---------------------------------------------------------------------


@dataclass(frozen=True)
class BusyInterval:
    """Blocking Outlook time of a member: time, ``showAs`` and source ids, never details."""

    user_id: str
    start: datetime
    end: datetime
    connection_id: UUID
    calendar_id: str
    event_id: str
    show_as: str


@dataclass(frozen=True)
class MemberConnection:
    connection_id: UUID
    sub_account_id: str
    user_id: str
    status: str
    sync_preference: str
    linked_calendar_id: str | None
    conflict_calendar_ids: tuple[str, ...]
    blocking_show_as: tuple[str, ...]
    time_zone: str | None
    changed_at: datetime


@dataclass(frozen=True)
class CalendarFreshness:
    """One Conflict Calendar of a member and how fresh calsync's copy of it is (``status``
    None: the sync-worker has reported nothing on it yet)."""

    user_id: str
    connection_id: UUID
    calendar_id: str
    connection_status: str
    status: str | None
    subscription: str | None
    last_synced_at: datetime | None
    last_error: str | None
    changed_at: datetime | None

    def is_stale(self, now: datetime, max_age: timedelta) -> bool:
        """Whether answers built on this calendar must say they may be out of date: the
        connection needs reauthorization, the sync or its subscription is unhealthy, or the
        last complete sync is older than ``max_age`` (or never happened)."""
        return (
            self.connection_status != "active"
            or self.status is None
            or self.status in UNHEALTHY_SYNC
            or self.subscription in UNWATCHED
            or self.last_synced_at is None
            or now - self.last_synced_at > max_age
        )


@dataclass(frozen=True)
class BookingConflict:
    """Blocking Outlook time over a confirmed booking (``start``/``end``: the overlap)."""

    booking_id: UUID
    connection_id: UUID
    calendar_id: str
    event_id: str
    show_as: str
    start: datetime
    end: datetime
    booking_version: int
    detected_at: datetime
    resolved_at: datetime | None
