"""calendarView/delta items of Microsoft Graph as calsync calendar events (the contract's payloads).

One record per instance: single instances, occurrences and exceptions become
:class:`CalendarEventUpserted` with UTC instants; ``@removed`` tombstones, cancelled instances
(``isCancelled``) and instances outside the sync window become :class:`CalendarEventRemoved`.

Decisions, each because the alternative loses or invents busy time:

* **Times** are read in the ``timeZone`` they are labelled with (Windows or IANA name; the
  sync-worker asks for UTC, Graph's default). An unknown zone is an error, not a UTC guess.
* **All-day events** come back from Graph as midnight-to-midnight labelled "UTC" whatever zone was
  asked for ("by design"); their dates are the event's days. They become the instants of those
  days' local midnights in the zone the event was made in (``originalStartTimeZone``, the master's
  for a thin occurrence), which is where Exchange keeps them and what the emulator's ground truth
  uses; where that zone is missing or unknown (``tzone://Microsoft/Custom``), in the mailbox's
  zone. Midnights are found per day, so DST changes are honoured.
* **Thin occurrences** take ``showAs``, ``isCancelled``, ``isAllDay`` and ``transactionId`` from
  their series master. An instance whose master is not at hand is held back and reported
  (:attr:`NormalizedBatch.missing_master_ids`), never emitted with a guessed showAs.
* **Outside the window**: an instance that does not overlap the window is a removal rather than
  nothing, so an event moved out of the window leaves the projection; a removal of an id the
  projection never had is harmless. Tombstones are removals whatever their dates.
* **Series masters** are never instances; one in the batch serves as its occurrences' master and
  is emitted as a removal of its id, in case that id was an instance before (a single event made
  recurring keeps its id).
* **Repeats**: Graph may list an item more than once in a round; the last listing wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Final, get_args
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from calsync_common.contracts.calendar_events import (
    CalendarEventRemoved,
    CalendarEventUpserted,
    EventKind,
    ShowAs,
)
from calsync_sync_worker.domain.series import (
    GraphItem,
    MasterLookup,
    is_removed,
    is_series_master,
    masters_in,
    needs_master,
    series_master_id_of,
)
from calsync_sync_worker.domain.time_zones import (
    UnknownTimeZone,
    instant_of,
    mailbox_zone,
    parse_wall_clock,
    start_of_day,
    try_resolve_zone,
)
from calsync_sync_worker.domain.transaction_ids import booking_id_from_transaction_id

CalendarEventChange = CalendarEventUpserted | CalendarEventRemoved

#: What a master fetched for its occurrences must include (a ``$select`` for ``GET /events/{id}``).
MASTER_SELECT: Final = (
    "id,type,changeKey,showAs,isCancelled,isAllDay,transactionId,originalStartTimeZone"
)
_REQUIRED_MASTER_FIELDS: Final = ("showAs", "isAllDay")
_SHOW_AS: Final[dict[str, ShowAs]] = {v.casefold(): v for v in get_args(ShowAs)}
_KINDS: Final[dict[str, EventKind]] = {v.casefold(): v for v in get_args(EventKind)}


class MalformedGraphItem(ValueError):
    """A delta item (or the master it needs) that cannot be read as an event instance."""

    def __init__(self, item_id: object, reason: str) -> None:
        super().__init__(f"Graph item {item_id!r}: {reason}")
        self.item_id = item_id
        self.reason = reason


@dataclass(frozen=True)
class SyncWindow:
    """The calendarView window of a delta round: ``[start, end)`` as aware instants."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be aware datetimes")
        if self.end <= self.start:
            raise ValueError("window end must be after its start")

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether ``[start, end)`` meets the window; an instant event counts where it starts."""
        if start == end:
            return self.start <= start < self.end
        return start < self.end and end > self.start


@dataclass(frozen=True)
class NormalizedBatch:
    """The records of a batch, in order, and what was held back for want of a series master."""

    events: tuple[CalendarEventChange, ...]
    #: Instances not emitted because their series master was not at hand.
    deferred_ids: tuple[str, ...] = ()
    #: The masters to fetch before normalising the batch again.
    missing_master_ids: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.deferred_ids


@dataclass(frozen=True)
class _Deferred:
    master_id: str


@dataclass(frozen=True)
class _Scope:
    connection_id: UUID
    calendar_id: str
    window: SyncWindow
    observed_at: datetime
    home_zone: Callable[[], ZoneInfo]

    def removed(self, event_id: str) -> CalendarEventRemoved:
        return CalendarEventRemoved(
            connection_id=self.connection_id,
            calendar_id=self.calendar_id,
            event_id=event_id,
            observed_at=self.observed_at,
        )


def normalize_delta_items(
    items: Iterable[GraphItem],
    *,
    connection_id: UUID,
    calendar_id: str,
    window: SyncWindow,
    mailbox_time_zone: str | None,
    observed_at: datetime,
    masters: MasterLookup,
) -> NormalizedBatch:
    """The calendar-event records of one batch of calendarView/delta items (pure).

    ``mailbox_time_zone`` is ``mailboxSettings.timeZone`` (Windows or IANA name; None is UTC).
    Masters that came in the batch are used before ``masters``. Raises :class:`MalformedGraphItem`
    or :class:`~.time_zones.UnknownTimeZone` for an item that cannot be read.
    """
    batch = list(items)
    in_batch = masters_in(batch)
    # Resolved on use only (all-day events without a zone of their own): a mailbox zone calsync
    # cannot read stops those events, not the whole calendar.
    home_zone = partial(mailbox_zone, mailbox_time_zone)

    def lookup(master_id: str) -> GraphItem | None:
        return in_batch.get(master_id) or masters.master(master_id)

    scope = _Scope(connection_id, calendar_id, window, observed_at, home_zone)
    outcomes: dict[str, CalendarEventChange | _Deferred] = {}
    for item in batch:
        item_id = item.get("id")
        if not isinstance(item_id, str) or not item_id:
            raise MalformedGraphItem(item_id, "no id")
        outcome = _normalize(item, item_id, scope, lookup)
        outcomes.pop(item_id, None)  # the last listing wins, and takes the last place
        outcomes[item_id] = outcome
    deferred = {i: o.master_id for i, o in outcomes.items() if isinstance(o, _Deferred)}
    return NormalizedBatch(
        events=tuple(o for o in outcomes.values() if not isinstance(o, _Deferred)),
        deferred_ids=tuple(deferred),
        missing_master_ids=tuple(dict.fromkeys(deferred.values())),
    )


def _normalize(
    item: GraphItem,
    item_id: str,
    scope: _Scope,
    lookup: Callable[[str], GraphItem | None],
) -> CalendarEventChange | _Deferred:
    if is_removed(item) or is_series_master(item):
        return scope.removed(item_id)
    master_id = series_master_id_of(item)
    master: GraphItem | None = None
    if master_id is not None and needs_master(item):
        master = lookup(master_id)
        if master is None:
            return _Deferred(master_id)
        lacking = [name for name in _REQUIRED_MASTER_FIELDS if name not in master]
        if lacking:
            raise MalformedGraphItem(master_id, f"series master lacks {lacking} (MASTER_SELECT)")
    try:
        return _instance(item, item_id, master_id, master, scope)
    except UnknownTimeZone as exc:
        raise UnknownTimeZone(exc.name, item_id) from exc
    except MalformedGraphItem:
        raise
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        raise MalformedGraphItem(item_id, str(exc)) from exc


def _instance(
    item: GraphItem,
    item_id: str,
    master_id: str | None,
    master: GraphItem | None,
    scope: _Scope,
) -> CalendarEventChange:
    def field(name: str) -> Any:  # the instance's own value, else its master's
        value = item.get(name)
        return master.get(name) if value is None and master is not None else value

    kind = _kind(item.get("type"), master_id, item_id)
    if field("isCancelled") is True:
        return scope.removed(item_id)
    is_all_day = field("isAllDay") is True
    start, end = _instants(item, is_all_day, field("originalStartTimeZone"), scope.home_zone)
    if end < start:
        raise MalformedGraphItem(item_id, "ends before it starts")
    if not scope.window.overlaps(start, end):
        return scope.removed(item_id)
    transaction_id = field("transactionId")
    return CalendarEventUpserted(
        connection_id=scope.connection_id,
        calendar_id=scope.calendar_id,
        event_id=item_id,
        series_master_id=master_id,
        kind=kind,
        start=start,
        end=end,
        is_all_day=is_all_day,
        show_as=_show_as(field("showAs")),
        change_key=_change_key(item),
        booking_id=booking_id_from_transaction_id(
            transaction_id if isinstance(transaction_id, str) else None
        ),
        observed_at=scope.observed_at,
    )


def _kind(value: object, master_id: str | None, item_id: str) -> EventKind:
    if value is None:  # not in the payload: tell it by the series it belongs to
        return "singleInstance" if master_id is None else "occurrence"
    kind = _KINDS.get(value.casefold()) if isinstance(value, str) else None
    if kind is None:
        raise MalformedGraphItem(item_id, f"unknown type {value!r}")
    if (kind == "singleInstance") != (master_id is None):
        raise MalformedGraphItem(item_id, f"type {kind} with seriesMasterId {master_id!r}")
    return kind


def _instants(
    item: GraphItem, is_all_day: bool, original_zone: object, home_zone: Callable[[], ZoneInfo]
) -> tuple[datetime, datetime]:
    start, end = item["start"], item["end"]
    if is_all_day:
        walls = parse_wall_clock(str(start["dateTime"])), parse_wall_clock(str(end["dateTime"]))
        if all(w.tzinfo is None and w.time() == w.min.time() for w in walls):
            zone = try_resolve_zone(original_zone) or home_zone()
            return start_of_day(walls[0].date(), zone), start_of_day(walls[1].date(), zone)
        # Not midnights after all: real instants in their labelled zone, read as such.
    return instant_of(start), instant_of(end)


def _show_as(value: object) -> ShowAs:
    """Graph's showAs. Absent (never on a real item or master) means Outlook's default, busy;
    a value this contract does not know (``unknownFutureValue``) is ``unknown``."""
    if value is None:
        return "busy"
    return _SHOW_AS.get(str(value).casefold(), "unknown")


def _change_key(item: GraphItem) -> str | None:
    change_key = item.get("changeKey")
    if isinstance(change_key, str) and change_key:
        return change_key
    etag = item.get("@odata.etag")
    if isinstance(etag, str) and etag:
        return etag.removeprefix("W/").strip('"') or None
    return None
