"""Graph calendarView/delta items → calsync calendar events (pure; no infrastructure)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from calsync_common.contracts.calendar_events import (
    CalendarEventRemoved,
    CalendarEventUpserted,
)
from calsync_sync_worker.domain.normalize import (
    CalendarEventChange,
    MalformedGraphItem,
    NormalizedBatch,
    SyncWindow,
    normalize_delta_items,
)
from calsync_sync_worker.domain.series import (
    MappingMasterLookup,
    master_ids_needed,
    missing_master_ids,
    stale_master_ids,
)
from calsync_sync_worker.domain.time_zones import UnknownTimeZone
from calsync_sync_worker.domain.transaction_ids import (
    CALSYNC_TRANSACTION_PREFIX,
    booking_id_from_transaction_id,
    transaction_id_for_booking,
)

GOLDEN = Path(__file__).resolve().parents[3] / "emulators" / "msgraph" / "tests" / "golden"
CONNECTION = UUID("9b7c3c1e-6f0e-4c41-9d0e-2f6a0d3f4a11")
CALENDAR = "AAMkCalendar="
OBSERVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = SyncWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC))
MASTER_ID = "AAMkMaster="


def golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def when(value: str, zone: str = "UTC") -> dict[str, str]:
    return {"dateTime": value, "timeZone": zone}


def event(event_id: str = "AAMkSingle=", **fields: Any) -> dict[str, Any]:
    """A full calendarView/delta item as Graph returns it (only the fields normalising reads)."""
    return {
        "@odata.etag": 'W/"etag-of-' + event_id + '"',
        "id": event_id,
        "changeKey": "ck-" + event_id,
        "type": "singleInstance",
        "seriesMasterId": None,
        "showAs": "busy",
        "isAllDay": False,
        "isCancelled": False,
        "originalStartTimeZone": "UTC",
        "start": when("2026-03-10T09:00:00.0000000"),
        "end": when("2026-03-10T10:00:00.0000000"),
        **fields,
    }


def master(**fields: Any) -> dict[str, Any]:
    return event(
        MASTER_ID,
        type="seriesMaster",
        recurrence=golden("recurrence_weekly.json"),
        **fields,
    )


def occurrence(occurrence_id: str = "AAMkOcc1=", day: int = 10) -> dict[str, Any]:
    """A thin occurrence item: exactly the keys Graph sends for one (see the golden file)."""
    return {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": 'W/"master-etag"',
        "seriesMasterId": MASTER_ID,
        "type": "occurrence",
        "id": occurrence_id,
        "start": when(f"2026-03-{day:02d}T09:00:00.0000000"),
        "end": when(f"2026-03-{day:02d}T09:30:00.0000000"),
    }


def removed(event_id: str, reason: str = "deleted") -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.event", "id": event_id, "@removed": {"reason": reason}}


def run(
    items: list[dict[str, Any]],
    *,
    masters: Mapping[str, Mapping[str, Any]] | None = None,
    zone: str | None = None,
    window: SyncWindow = WINDOW,
) -> NormalizedBatch:
    return normalize_delta_items(
        items,
        connection_id=CONNECTION,
        calendar_id=CALENDAR,
        window=window,
        mailbox_time_zone=zone,
        observed_at=OBSERVED,
        masters=MappingMasterLookup(masters or {}),
    )


def only(batch: NormalizedBatch) -> CalendarEventChange:
    assert batch.complete
    assert len(batch.events) == 1, batch.events
    return batch.events[0]


def upsert(batch: NormalizedBatch) -> CalendarEventUpserted:
    record = only(batch)
    assert isinstance(record, CalendarEventUpserted), record
    return record


def removal(batch: NormalizedBatch) -> CalendarEventRemoved:
    record = only(batch)
    assert isinstance(record, CalendarEventRemoved), record
    return record


# --- single instances and time zones --------------------------------------------------------


def test_single_instance_in_utc() -> None:
    record = upsert(run([event()]))
    assert record == CalendarEventUpserted(
        connection_id=CONNECTION,
        calendar_id=CALENDAR,
        event_id="AAMkSingle=",
        kind="singleInstance",
        start=utc(2026, 3, 10, 9),
        end=utc(2026, 3, 10, 10),
        show_as="busy",
        change_key="ck-AAMkSingle=",
        observed_at=OBSERVED,
    )
    assert record.start.utcoffset() == timedelta(0)


def test_golden_event_in_a_windows_zone() -> None:
    item = golden("event_get.json")  # 11:00-12:00 "Pacific Standard Time" on 2017-04-15 (PDT)
    window = SyncWindow(utc(2017, 4, 1), utc(2017, 5, 1))
    record = upsert(run([item], window=window))
    assert (record.start, record.end) == (utc(2017, 4, 15, 18), utc(2017, 4, 15, 19))
    assert record.change_key == item["changeKey"]
    assert record.booking_id is None


@pytest.mark.parametrize(
    ("windows", "iana", "expected"),
    [
        ("Pacific Standard Time", "America/Los_Angeles", utc(2026, 3, 10, 16)),  # PDT since 8 Mar
        ("GTB Standard Time", "Europe/Bucharest", utc(2026, 3, 10, 7)),  # EET
        ("W. Europe Standard Time", "Europe/Berlin", utc(2026, 3, 10, 8)),
        ("India Standard Time", "Asia/Kolkata", utc(2026, 3, 10, 3, 30)),
        ("UTC", "Etc/UTC", utc(2026, 3, 10, 9)),
    ],
)
def test_windows_and_iana_names_give_the_same_instant(
    windows: str, iana: str, expected: datetime
) -> None:
    for zone in (windows, iana, windows.upper()):
        item = event(
            start=when("2026-03-10T09:00:00.0000000", zone),
            end=when("2026-03-10T09:45:00.0000000", zone),
        )
        record = upsert(run([item]))
        assert (record.start, record.end) == (expected, expected + timedelta(minutes=45)), zone


def test_an_offset_in_the_date_time_wins_over_the_label() -> None:
    item = event(start=when("2026-03-10T09:00:00+02:00", "Pacific Standard Time"))
    assert upsert(run([item])).start == utc(2026, 3, 10, 7)


def test_unknown_zone_is_an_error_never_a_utc_guess() -> None:
    item = event("AAMkMars=", start=when("2026-03-10T09:00:00.0000000", "Mars Standard Time"))
    with pytest.raises(UnknownTimeZone) as caught:
        run([item])
    assert caught.value.name == "Mars Standard Time"
    assert caught.value.item_id == "AAMkMars="


def test_unknown_mailbox_zone_fails_only_when_it_is_needed() -> None:
    assert upsert(run([event()], zone="Mars Standard Time")).start == utc(2026, 3, 10, 9)
    all_day = event(
        isAllDay=True,
        originalStartTimeZone=None,
        start=when("2026-03-10T00:00:00.0000000"),
        end=when("2026-03-11T00:00:00.0000000"),
    )
    with pytest.raises(UnknownTimeZone):
        run([all_day], zone="Mars Standard Time")


# --- all-day events -------------------------------------------------------------------------


def all_day(first: str, after_last: str, original_zone: str | None) -> dict[str, Any]:
    """All-day as Graph returns it: midnight-to-midnight labelled UTC, whatever the zone."""
    return event(
        "AAMkAllDay=",
        isAllDay=True,
        showAs="free",
        originalStartTimeZone=original_zone,
        originalEndTimeZone=original_zone,
        start=when(f"{first}T00:00:00.0000000"),
        end=when(f"{after_last}T00:00:00.0000000"),
    )


@pytest.mark.parametrize(
    ("original_zone", "mailbox_zone"),
    [
        ("GTB Standard Time", "Europe/Bucharest"),
        ("Europe/Bucharest", None),  # the event's zone decides
        (None, "GTB Standard Time"),  # no zone on the item: the mailbox's
        ("tzone://Microsoft/Custom", "Europe/Bucharest"),  # a legacy custom zone: the mailbox's
    ],
)
def test_all_day_is_the_local_day_across_the_spring_dst_change(
    original_zone: str | None, mailbox_zone: str | None
) -> None:
    record = upsert(run([all_day("2026-03-29", "2026-03-30", original_zone)], zone=mailbox_zone))
    # Bucharest goes from +02:00 to +03:00 at 03:00 local that day: a 23-hour day.
    assert (record.start, record.end) == (utc(2026, 3, 28, 22), utc(2026, 3, 29, 21))
    assert record.is_all_day
    assert record.show_as == "free"


def test_all_day_across_the_autumn_dst_change_lasts_25_hours() -> None:
    record = upsert(run([all_day("2026-10-25", "2026-10-26", "Europe/Bucharest")]))
    assert (record.start, record.end) == (utc(2026, 10, 24, 21), utc(2026, 10, 25, 22))


def test_multi_day_all_day_event() -> None:
    record = upsert(run([all_day("2026-03-27", "2026-03-31", None)], zone="Europe/Bucharest"))
    assert (record.start, record.end) == (utc(2026, 3, 26, 22), utc(2026, 3, 30, 21))


def test_all_day_in_a_utc_mailbox_stays_at_utc_midnights() -> None:
    record = upsert(run([all_day("2026-03-29", "2026-03-30", None)]))
    assert (record.start, record.end) == (utc(2026, 3, 29), utc(2026, 3, 30))


def test_all_day_takes_the_zone_it_was_made_in_over_the_mailbox_zone() -> None:
    # Exchange keeps the event at New York's midnights; the emulator's ground truth agrees.
    item = all_day("2026-03-10", "2026-03-11", "Eastern Standard Time")
    record = upsert(run([item], zone="Europe/Bucharest"))
    assert (record.start, record.end) == (utc(2026, 3, 10, 4), utc(2026, 3, 11, 4))


def test_thin_occurrence_of_an_all_day_series_uses_the_master() -> None:
    item = occurrence()
    item["start"], item["end"] = when("2026-03-10T00:00:00.0000000"), when("2026-03-11T00:00:00")
    the_master = master(isAllDay=True, originalStartTimeZone="Pacific Standard Time")
    record = upsert(run([item], masters={MASTER_ID: the_master}))
    assert (record.start, record.end) == (utc(2026, 3, 10, 7), utc(2026, 3, 11, 7))
    assert record.is_all_day


# --- series ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "show_as", ["busy", "free", "tentative", "oof", "workingElsewhere", "unknown"]
)
def test_golden_thin_occurrence_takes_show_as_from_its_master(show_as: str) -> None:
    item = golden("delta_occurrence.json")
    the_master = master(showAs=show_as)
    window = SyncWindow(utc(2020, 3, 1), utc(2020, 4, 1))
    record = upsert(run([item], masters={item["seriesMasterId"]: the_master}, window=window))
    assert record.show_as == show_as
    assert record.kind == "occurrence"
    assert record.series_master_id == item["seriesMasterId"]
    assert (record.start, record.end) == (utc(2020, 3, 2, 16), utc(2020, 3, 2, 16, 30))
    assert record.change_key == "DwAAABYAAABBWBRvJ8yZQ5kMapVp2C0IAAAgA4Fq"  # from @odata.etag


def test_show_as_is_read_case_insensitively_and_unknown_values_are_unknown() -> None:
    records = run(
        [event("A", showAs="Busy"), event("B", showAs="unknownFutureValue"), event("C")]
    ).events
    assert [r.show_as for r in records if isinstance(r, CalendarEventUpserted)] == [
        "busy",
        "unknown",
        "busy",
    ]


def test_exception_keeps_its_own_show_as() -> None:
    exception = event(
        "AAMkExc=",
        type="exception",
        seriesMasterId=MASTER_ID,
        showAs="tentative",
        start=when("2026-03-17T11:00:00.0000000"),
        end=when("2026-03-17T12:00:00.0000000"),
    )
    record = upsert(run([exception], masters={MASTER_ID: master(showAs="busy")}))
    assert record.show_as == "tentative"
    assert record.kind == "exception"
    assert record.series_master_id == MASTER_ID
    assert record.start == utc(2026, 3, 17, 11)


def test_cancelled_exception_is_a_removal_without_needing_its_master() -> None:
    cancelled = event("AAMkExc=", type="exception", seriesMasterId=MASTER_ID, isCancelled=True)
    assert removal(run([cancelled])).event_id == "AAMkExc="


def test_occurrences_of_a_cancelled_series_are_removals() -> None:
    batch = run([occurrence()], masters={MASTER_ID: master(isCancelled=True)})
    assert removal(batch).event_id == "AAMkOcc1="


def test_cancelled_single_instance_is_a_removal() -> None:
    assert removal(run([event(isCancelled=True)])).event_id == "AAMkSingle="


@pytest.mark.parametrize("reason", ["deleted", "changed"])
def test_removed_tombstone_is_a_removal(reason: str) -> None:
    record = removal(run([removed("AAMkOcc1=", reason)]))
    assert record == CalendarEventRemoved(
        connection_id=CONNECTION, calendar_id=CALENDAR, event_id="AAMkOcc1=", observed_at=OBSERVED
    )


def test_golden_delta_page() -> None:
    items = golden("delta_page.json")["value"]
    window = SyncWindow(utc(2016, 12, 1), utc(2017, 1, 1))
    created, gone = run(items, window=window).events
    assert isinstance(created, CalendarEventUpserted)
    assert (created.start, created.end) == (utc(2016, 12, 9, 20, 30), utc(2016, 12, 9, 22))
    assert created.kind == "singleInstance"
    assert created.show_as == "busy"  # the docs' sample omits showAs: Outlook's default
    assert created.change_key == "EZ9r3czxY0m2jz8c45czkwAAFXcvIw=="
    assert isinstance(gone, CalendarEventRemoved)
    assert gone.event_id == "AAMkADVxUAAA="


def test_series_master_is_never_an_instance_and_serves_its_occurrences() -> None:
    items = [master(showAs="oof"), occurrence("AAMkOcc1=", 10), occurrence("AAMkOcc2=", 17)]
    assert missing_master_ids(items, cached=set()) == []
    batch = run(items)  # no cached masters: the one in the batch is used
    assert batch.complete
    master_record, *occurrences = batch.events
    assert isinstance(master_record, CalendarEventRemoved)  # its id is no instance (any more)
    assert master_record.event_id == MASTER_ID
    assert [
        (o.event_id, o.show_as) for o in occurrences if isinstance(o, CalendarEventUpserted)
    ] == [
        ("AAMkOcc1=", "oof"),
        ("AAMkOcc2=", "oof"),
    ]


# --- missing masters ------------------------------------------------------------------------


def test_occurrence_without_its_master_is_held_back_and_reported() -> None:
    items = [occurrence("AAMkOcc1="), event(), occurrence("AAMkOcc2=", 17), removed("AAMkOld=")]
    batch = run(items)
    assert not batch.complete
    assert batch.deferred_ids == ("AAMkOcc1=", "AAMkOcc2=")
    assert batch.missing_master_ids == (MASTER_ID,)
    assert [r.event_id for r in batch.events] == ["AAMkSingle=", "AAMkOld="]
    # Fetched and retried, the batch is complete.
    retried = run(items, masters={MASTER_ID: master(showAs="free")})
    assert retried.complete
    assert len(retried.events) == 4


def test_missing_master_ids_lists_what_the_cache_lacks() -> None:
    other = dict(occurrence("AAMkOther="), seriesMasterId="AAMkOtherMaster=")
    exception = event("AAMkExc=", type="exception", seriesMasterId="AAMkExcMaster=")
    cancelled = dict(exception, id="AAMkExc2=", seriesMasterId="AAMkGone=", isCancelled=True)
    items = [occurrence(), other, occurrence("AAMkOcc2=", 17), exception, cancelled, event()]
    assert master_ids_needed(items) == [MASTER_ID, "AAMkOtherMaster=", "AAMkExcMaster="]
    assert missing_master_ids(items, cached={MASTER_ID: master()}) == [
        "AAMkOtherMaster=",
        "AAMkExcMaster=",
    ]
    assert missing_master_ids([removed("x"), event()], cached=()) == []


def test_stale_masters_are_told_by_their_occurrences_etags() -> None:
    fresh = master(changeKey="master-etag")  # occurrence() carries W/"master-etag"
    old = master(changeKey="before-the-edit")
    items = [occurrence(), occurrence("AAMkOcc2=", 17), event()]
    assert stale_master_ids(items, {MASTER_ID: fresh}) == []
    assert stale_master_ids(items, {MASTER_ID: old}) == [MASTER_ID]
    assert stale_master_ids(items, {}) == []  # not cached: missing_master_ids' business


def test_a_master_fetched_without_show_as_is_refused() -> None:
    thin_master = {"id": MASTER_ID, "type": "seriesMaster"}  # e.g. a $select that dropped it
    with pytest.raises(MalformedGraphItem) as caught:
        run([occurrence()], masters={MASTER_ID: thin_master})
    assert caught.value.item_id == MASTER_ID


# --- window ---------------------------------------------------------------------------------


def test_instances_outside_the_window_are_removed_tombstones_kept() -> None:
    window = SyncWindow(utc(2026, 3, 10, 10), utc(2026, 3, 11))
    items = [
        event("before", end=when("2026-03-10T10:00:00")),  # ends as the window starts
        event("overlap", end=when("2026-03-10T10:00:01")),
        event("after", start=when("2026-03-11T00:00:00"), end=when("2026-03-11T01:00:00")),
        removed("far-away"),  # tombstones carry no dates: always kept
    ]
    records = run(items, window=window).events
    assert [(r.event_id, type(r).__name__) for r in records] == [
        ("before", "CalendarEventRemoved"),
        ("overlap", "CalendarEventUpserted"),
        ("after", "CalendarEventRemoved"),
        ("far-away", "CalendarEventRemoved"),
    ]


def test_all_day_window_check_uses_the_local_day() -> None:
    # 2026-03-10 in Auckland (+13:00) ends at 11:00Z on the 10th: before this window.
    window = SyncWindow(utc(2026, 3, 10, 12), utc(2026, 3, 20))
    item = all_day("2026-03-10", "2026-03-11", "Pacific/Auckland")
    assert isinstance(only(run([item], window=window)), CalendarEventRemoved)


def test_zero_length_event_counts_where_it_starts() -> None:
    item = event(end=when("2026-03-10T09:00:00"))
    record = upsert(run([item]))
    assert record.start == record.end


# --- echo of calsync's own events -----------------------------------------------------------


def test_own_write_back_is_flagged_with_its_booking() -> None:
    booking = uuid4()
    tid = transaction_id_for_booking(booking)
    assert tid == f"calsync-{booking}"
    record = upsert(run([event(transactionId=tid)]))
    assert record.booking_id == booking


def test_occurrences_of_a_calsync_series_inherit_the_booking() -> None:
    booking = uuid4()
    the_master = master(transactionId=transaction_id_for_booking(booking))
    exception = event("AAMkExc=", type="exception", seriesMasterId=MASTER_ID, showAs="free")
    batch = run([occurrence(), exception], masters={MASTER_ID: the_master})
    assert {r.booking_id for r in batch.events if isinstance(r, CalendarEventUpserted)} == {booking}


@pytest.mark.parametrize(
    "transaction_id",
    [
        None,
        "",
        "7E163156-7762-4BEB-A1C6-729EA81755A7",  # another app's (Microsoft's docs sample)
        "calsync-",
        "calsync-not-a-uuid",
        "calsync-7e16315677624beba1c6729ea81755a7",  # not the canonical form calsync writes
        "Calsync-7e163156-7762-4beb-a1c6-729ea81755a7",
        "xcalsync-7e163156-7762-4beb-a1c6-729ea81755a7",
    ],
)
def test_foreign_transaction_ids_are_not_bookings(transaction_id: str | None) -> None:
    assert booking_id_from_transaction_id(transaction_id) is None
    assert upsert(run([event(transactionId=transaction_id)])).booking_id is None


def test_booking_id_round_trips_in_either_case() -> None:
    booking = UUID("7e163156-7762-4beb-a1c6-729ea81755a7")
    assert booking_id_from_transaction_id(transaction_id_for_booking(booking)) == booking
    upper = CALSYNC_TRANSACTION_PREFIX + str(booking).upper()
    assert booking_id_from_transaction_id(upper) == booking


# --- repeats and malformed items ------------------------------------------------------------


def test_an_item_listed_twice_keeps_its_last_state_in_its_last_place() -> None:
    items = [event("A"), event("B"), event("A", showAs="free"), removed("B"), event("C")]
    records = run(items).events
    assert [(r.event_id, type(r).__name__) for r in records] == [
        ("A", "CalendarEventUpserted"),
        ("B", "CalendarEventRemoved"),
        ("C", "CalendarEventUpserted"),
    ]
    first = records[0]
    assert isinstance(first, CalendarEventUpserted)
    assert first.show_as == "free"


@pytest.mark.parametrize(
    "item",
    [
        {"type": "singleInstance"},  # no id
        event(type="occurrence"),  # an occurrence of no series
        event(type="meeting"),
        event(start={"timeZone": "UTC"}),
        event(start=when("tomorrow-ish")),
        event(start=when("2026-03-10T11:00:00")),  # ends before it starts
        event("x" * 600),  # longer than any Graph id the contract takes
    ],
)
def test_malformed_items_are_refused(item: dict[str, Any]) -> None:
    with pytest.raises(MalformedGraphItem):
        run([item])


def test_window_must_be_aware_and_forward() -> None:
    with pytest.raises(ValueError, match="aware"):
        SyncWindow(datetime(2026, 1, 1), datetime(2026, 2, 1))
    with pytest.raises(ValueError, match="after"):
        SyncWindow(utc(2026, 2, 1), utc(2026, 1, 1))
