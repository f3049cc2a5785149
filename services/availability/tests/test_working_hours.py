"""Weekly working hours in a member's zone, expanded into UTC: ordinary days, DST switches (the
gap and the repeated hour, in Bucharest and New York), night shifts, and the rule's properties
over many zones and dates."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from calsync_availability.domain.booking_calendars import Member, WorkingSpan
from calsync_availability.domain.intervals import Interval, merge
from calsync_availability.domain.working_hours import wall_clock_instant, working_spans

NEW_YORK = "America/New_York"
BUCHAREST = "Europe/Bucharest"
#: Zones with unusual rules: 30-minute DST, switches at midnight, negative DST, skipped days,
#: quarter-hour offsets, and none at all.
ZONES = [
    NEW_YORK,
    BUCHAREST,
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/Havana",
    "Asia/Beirut",
    "Europe/Dublin",
    "Pacific/Apia",
    "Asia/Kathmandu",
    "Africa/Casablanca",
    "Europe/London",
    "UTC",
]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def member(zone: str, *spans: tuple[int, str, str]) -> Member:
    def minute(text: str) -> int:
        h, m = text.split(":")
        return int(h) * 60 + int(m)

    return Member(
        user_id="u1",
        time_zone=zone,
        working_hours=tuple(sorted(WorkingSpan(d, minute(s), minute(e)) for d, s, e in spans)),
    )


WEEKDAYS_9_TO_5 = [(d, "09:00", "17:00") for d in range(5)]


def local(interval: Interval, zone: str) -> tuple[str, str]:
    tz = ZoneInfo(zone)
    return (
        interval.start.astimezone(tz).strftime("%a %H:%M"),
        interval.end.astimezone(tz).strftime("%a %H:%M"),
    )


def on_day(spans: list[Interval], day: date, zone: str) -> list[Interval]:
    return [s for s in spans if s.start.astimezone(ZoneInfo(zone)).date() == day]


# --- a 09:00-17:00 day stays 09:00-17:00 local across each switch ------------------------------


def test_new_york_spring_forward_week_keeps_local_hours() -> None:
    # The switch is Sunday 8 March 2026, 02:00 EST -> 03:00 EDT.
    spans = working_spans(member(NEW_YORK, *WEEKDAYS_9_TO_5), utc(2026, 3, 2), utc(2026, 3, 14))
    in_window = [s for s in spans if utc(2026, 3, 2) <= s.start < utc(2026, 3, 14)]
    assert [local(s, NEW_YORK)[0][4:] for s in in_window] == ["09:00"] * 10
    assert {s.end - s.start for s in in_window} == {timedelta(hours=8)}
    assert in_window[4].start == utc(2026, 3, 6, 14)  # Friday, EST (UTC-5)
    assert in_window[5].start == utc(2026, 3, 9, 13)  # Monday, EDT (UTC-4)


def test_new_york_fall_back_week_keeps_local_hours() -> None:
    # The switch is Sunday 1 November 2026, 02:00 EDT -> 01:00 EST.
    spans = working_spans(member(NEW_YORK, *WEEKDAYS_9_TO_5), utc(2026, 10, 26), utc(2026, 11, 7))
    in_window = [s for s in spans if utc(2026, 10, 26) <= s.start < utc(2026, 11, 7)]
    assert [local(s, NEW_YORK) for s in in_window[4:6]] == [
        ("Fri 09:00", "Fri 17:00"),
        ("Mon 09:00", "Mon 17:00"),
    ]
    assert in_window[4].start == utc(2026, 10, 30, 13)
    assert in_window[5].start == utc(2026, 11, 2, 14)


def test_bucharest_spring_forward_and_fall_back_weeks_keep_local_hours() -> None:
    # 29 March 2026 03:00 EET -> 04:00 EEST; 25 October 2026 04:00 EEST -> 03:00 EET.
    m = member(BUCHAREST, *WEEKDAYS_9_TO_5)
    spring = working_spans(m, utc(2026, 3, 27), utc(2026, 3, 31))
    assert [s.start for s in spring if utc(2026, 3, 27) <= s.start < utc(2026, 3, 31, 12)] == [
        utc(2026, 3, 27, 7),  # Friday 09:00 EET (UTC+2)
        utc(2026, 3, 30, 6),  # Monday 09:00 EEST (UTC+3)
        utc(2026, 3, 31, 6),
    ]
    autumn = working_spans(m, utc(2026, 10, 23), utc(2026, 10, 27))
    assert [s.start for s in autumn if utc(2026, 10, 23) <= s.start < utc(2026, 10, 27, 12)] == [
        utc(2026, 10, 23, 6),
        utc(2026, 10, 26, 7),
        utc(2026, 10, 27, 7),
    ]
    assert all(local(s, BUCHAREST)[1][4:] == "17:00" for s in spring + autumn)


# --- the switch inside a span: the gap and the repeated hour ------------------------------------


def test_a_span_across_the_gap_loses_the_skipped_hour() -> None:
    sunday = date(2026, 3, 8)
    spans = working_spans(member(NEW_YORK, (6, "01:00", "04:00")), utc(2026, 3, 8), utc(2026, 3, 9))
    (span,) = on_day(spans, sunday, NEW_YORK)
    assert span == Interval(utc(2026, 3, 8, 6), utc(2026, 3, 8, 8))  # 01:00 EST to 04:00 EDT
    assert span.end - span.start == timedelta(hours=2)


def test_a_time_in_the_gap_is_the_moment_the_clock_jumps() -> None:
    zone = ZoneInfo(NEW_YORK)
    jump = utc(2026, 3, 8, 7)  # 02:00 EST == 03:00 EDT
    assert wall_clock_instant(date(2026, 3, 8), 2 * 60, zone) == jump
    assert wall_clock_instant(date(2026, 3, 8), 2 * 60 + 30, zone) == jump
    assert wall_clock_instant(date(2026, 3, 8), 3 * 60, zone) == jump
    assert wall_clock_instant(date(2026, 3, 8), 2 * 60 - 1, zone) == jump - timedelta(minutes=1)
    # Bucharest skips 03:00-04:00 local (01:00 UTC).
    bucharest = ZoneInfo(BUCHAREST)
    assert wall_clock_instant(date(2026, 3, 29), 3 * 60 + 30, bucharest) == utc(2026, 3, 29, 1)


def test_a_span_wholly_inside_the_gap_is_empty_that_day_only() -> None:
    m = member(NEW_YORK, (6, "02:00", "02:45"))
    spans = working_spans(m, utc(2026, 3, 1), utc(2026, 3, 16))
    days = [s.start.astimezone(ZoneInfo(NEW_YORK)).date() for s in spans]
    assert date(2026, 3, 1) in days
    assert date(2026, 3, 15) in days
    assert date(2026, 3, 8) not in days


def test_a_span_across_the_repeated_hour_gains_it() -> None:
    spans = working_spans(
        member(NEW_YORK, (6, "00:00", "03:00")), utc(2026, 11, 1), utc(2026, 11, 2)
    )
    (span,) = on_day(spans, date(2026, 11, 1), NEW_YORK)
    assert span == Interval(utc(2026, 11, 1, 4), utc(2026, 11, 1, 8))  # 00:00 EDT to 03:00 EST
    assert span.end - span.start == timedelta(hours=4)


def test_an_ambiguous_time_is_its_first_occurrence() -> None:
    m = member(NEW_YORK, (6, "00:00", "01:30"), (6, "01:30", "03:00"))
    spans = working_spans(m, utc(2026, 11, 1), utc(2026, 11, 2))
    first, second = on_day(spans, date(2026, 11, 1), NEW_YORK)
    assert first == Interval(utc(2026, 11, 1, 4), utc(2026, 11, 1, 5, 30))  # ends 01:30 EDT
    assert second == Interval(utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 8))  # from 01:30 EDT
    # Bucharest repeats 03:00-04:00 local: 03:30 is first read at 00:30 UTC (EEST).
    bucharest = ZoneInfo(BUCHAREST)
    assert wall_clock_instant(date(2026, 10, 25), 3 * 60 + 30, bucharest) == utc(
        2026, 10, 25, 0, 30
    )


def test_a_night_shift_is_two_spans_that_join_at_midnight() -> None:
    m = member(BUCHAREST, (0, "22:00", "24:00"), (1, "00:00", "06:00"))
    spans = working_spans(m, utc(2026, 6, 1), utc(2026, 6, 3))
    joined = merge(spans)
    assert Interval(utc(2026, 6, 1, 19), utc(2026, 6, 2, 3)) in joined  # Mon 22:00 to Tue 06:00
    assert len(spans) == 2


def test_spans_are_found_whatever_zone_the_window_is_given_in() -> None:
    m = member(BUCHAREST, *WEEKDAYS_9_TO_5)
    new_york = ZoneInfo(NEW_YORK)
    as_utc = working_spans(m, utc(2026, 3, 9), utc(2026, 3, 13))
    as_new_york = working_spans(
        m, utc(2026, 3, 9).astimezone(new_york), utc(2026, 3, 13).astimezone(new_york)
    )
    assert as_utc == as_new_york


# --- the rule's properties, over many zones and days -------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    day=st.dates(min_value=date(2011, 1, 1), max_value=date(2032, 12, 31)),
    minute=st.integers(min_value=0, max_value=24 * 60 - 1),
)
def test_a_boundary_is_the_first_instant_the_clock_reads_that_time(
    zone: str, day: date, minute: int
) -> None:
    tz = ZoneInfo(zone)
    target = datetime.combine(day, time()) + timedelta(minutes=minute)
    instant = wall_clock_instant(day, minute, tz)

    def reading(at: datetime) -> datetime:
        return at.astimezone(tz).replace(tzinfo=None)

    assert reading(instant) >= target
    assert reading(instant - timedelta(seconds=1)) < target
    # Later times of the same day never map to earlier instants.
    assert wall_clock_instant(day, minute + 1, tz) >= instant


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    start=st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2030, 1, 1)),
    days=st.integers(min_value=1, max_value=21),
)
def test_weekday_hours_cover_every_window_day_in_order(
    zone: str, start: datetime, days: int
) -> None:
    window_start = start.replace(tzinfo=UTC)
    window_end = window_start + timedelta(days=days)
    spans = working_spans(member(zone, *WEEKDAYS_9_TO_5), window_start, window_end)
    assert spans == sorted(spans)
    assert all(s.start < s.end for s in spans)
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))
    tz = ZoneInfo(zone)
    for s in spans:
        begins = s.start.astimezone(tz)
        assert begins.weekday() < 5
        assert begins.time() == time(9)  # no switch happens at 09:00 in these zones
    covered = {s.start.astimezone(tz).date() for s in spans}
    first, last = window_start.astimezone(tz).date(), window_end.astimezone(tz).date()
    wanted = {
        first + timedelta(days=i)
        for i in range((last - first).days + 1)
        if (first + timedelta(days=i)).weekday() < 5
    }
    assert wanted <= covered
