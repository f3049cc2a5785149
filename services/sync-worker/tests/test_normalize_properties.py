"""Properties of time-zone handling and normalisation, over every zone tzdata knows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import example, given, settings
from hypothesis import strategies as st
from tzlocal.windows_tz import win_tz

from calsync_common.contracts.calendar_events import (
    CalendarEventRemoved,
    CalendarEventUpserted,
)
from calsync_sync_worker.domain.normalize import SyncWindow, normalize_delta_items
from calsync_sync_worker.domain.series import MappingMasterLookup
from calsync_sync_worker.domain.time_zones import (
    instant_of,
    resolve_zone,
    start_of_day,
)
from calsync_sync_worker.domain.transaction_ids import (
    CALSYNC_TRANSACTION_PREFIX,
    booking_id_from_transaction_id,
    transaction_id_for_booking,
)

#: No example database: nothing is written into the working tree.
PROPERTY = settings(database=None, deadline=None, max_examples=300)
IANA_NAMES = sorted(available_timezones())
WINDOWS_NAMES = sorted(win_tz)
ONE_SECOND = timedelta(seconds=1)

zone_names = st.sampled_from(IANA_NAMES) | st.sampled_from(WINDOWS_NAMES)
days = st.dates(date(1950, 1, 1), date(2100, 12, 31))
instants = st.datetimes(datetime(1950, 1, 2), datetime(2100, 12, 30), timezones=st.just(UTC))


def graph_wall_clock(value: datetime) -> str:
    """How Graph writes a wall-clock time: no offset, seven fractional digits."""
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "0"


@PROPERTY
@given(st.sampled_from(IANA_NAMES), days)
@example("Pacific/Apia", date(2011, 12, 30))  # skipped: the zone crossed the date line
@example("Pacific/Apia", date(2011, 12, 31))
@example("America/Santiago", date(2022, 9, 11))  # midnight in the DST gap
@example("America/Santiago", date(2022, 4, 3))  # clocks go back from midnight
@example("America/Havana", date(2024, 3, 10))
@example("Europe/Bucharest", date(2026, 3, 29))
def test_start_of_day_is_the_first_instant_of_the_local_day(name: str, day: date) -> None:
    zone = ZoneInfo(name)
    start = start_of_day(day, zone)
    assert start.utcoffset() == timedelta(0)
    assert start.microsecond == 0
    assert start.astimezone(zone).date() >= day
    assert (start - ONE_SECOND).astimezone(zone).date() < day
    skipped = start.astimezone(zone).date() > day  # a day a zone left out (Apia, 30 Dec 2011)
    next_start = start_of_day(day + timedelta(days=1), zone)
    assert start == next_start if skipped else start < next_start


@PROPERTY
@given(zone_names, instants)
def test_wall_clock_in_any_named_zone_reads_back_as_the_instant(
    name: str, instant: datetime
) -> None:
    zone = resolve_zone(name)
    local = instant.astimezone(zone)
    parsed = instant_of({"dateTime": graph_wall_clock(local), "timeZone": name})
    if local.fold:  # the repeated hour: a wall clock without offset is read as its first pass
        assert parsed == instant - (local.replace(fold=0).utcoffset() or timedelta(0)) + (
            local.utcoffset() or timedelta(0)
        )
    else:
        assert parsed == instant


@PROPERTY
@given(st.sampled_from(WINDOWS_NAMES))
def test_windows_names_map_through_cldr_in_any_case(name: str) -> None:
    expected = ZoneInfo(win_tz[name])
    assert resolve_zone(name) == expected
    assert resolve_zone(name.upper()) == expected
    assert resolve_zone(f"  {name.lower()} ") == expected


@PROPERTY
@given(st.sampled_from(IANA_NAMES), days, st.integers(1, 31))
def test_all_day_events_cover_the_local_days(name: str, first: date, length: int) -> None:
    after_last = first + timedelta(days=length)
    item = {
        "id": "AAMkAllDay=",
        "type": "singleInstance",
        "isAllDay": True,
        "showAs": "busy",
        "originalStartTimeZone": name,
        "start": {"dateTime": f"{first.isoformat()}T00:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": f"{after_last.isoformat()}T00:00:00.0000000", "timeZone": "UTC"},
    }
    zone = ZoneInfo(name)
    window = SyncWindow(start_of_day(first, zone), start_of_day(after_last, zone) + ONE_SECOND)
    (record,) = normalize_delta_items(
        [item],
        connection_id=uuid4(),
        calendar_id="cal",
        window=window,
        mailbox_time_zone="Mars Standard Time",  # never consulted: the event names its zone
        observed_at=datetime(2026, 1, 1, tzinfo=UTC),
        masters=MappingMasterLookup({}),
    ).events
    assert isinstance(record, CalendarEventUpserted)
    assert record.is_all_day
    assert (record.start, record.end) == (start_of_day(first, zone), start_of_day(after_last, zone))


@PROPERTY
@given(instants, st.timedeltas(timedelta(0), timedelta(days=3)))
def test_single_events_are_kept_exactly_when_they_meet_the_window(
    start: datetime, duration: timedelta
) -> None:
    start = start.replace(microsecond=0)
    end = start + duration
    window = SyncWindow(datetime(2000, 1, 1, tzinfo=UTC), datetime(2050, 1, 1, tzinfo=UTC))
    item = {
        "id": "AAMkSingle=",
        "type": "singleInstance",
        "showAs": "tentative",
        "start": {"dateTime": graph_wall_clock(start), "timeZone": "UTC"},
        "end": {"dateTime": graph_wall_clock(end), "timeZone": "UTC"},
    }
    (record,) = normalize_delta_items(
        [item],
        connection_id=uuid4(),
        calendar_id="cal",
        window=window,
        mailbox_time_zone=None,
        observed_at=datetime(2026, 1, 1, tzinfo=UTC),
        masters=MappingMasterLookup({}),
    ).events
    if window.overlaps(start, end):
        assert isinstance(record, CalendarEventUpserted)
        assert (record.start, record.end, record.show_as) == (start, end, "tentative")
    else:
        assert isinstance(record, CalendarEventRemoved)


@PROPERTY
@given(st.uuids())
def test_booking_ids_round_trip_through_transaction_ids(booking: UUID) -> None:
    assert booking_id_from_transaction_id(transaction_id_for_booking(booking)) == booking


@PROPERTY
@given(st.text())
def test_other_transaction_ids_are_never_bookings(text: str) -> None:
    if not text.startswith(CALSYNC_TRANSACTION_PREFIX):
        assert booking_id_from_transaction_id(text) is None
    assert booking_id_from_transaction_id(CALSYNC_TRANSACTION_PREFIX + text + "x") is None
