"""Free slots of a booking calendar (pure): the grid, buffers, notice, types, the event-calendar
rule, DST weeks in New York and Bucharest, members and queries in different zones; and, for random
calendars, busy time and windows, the properties every answer keeps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calsync_availability.domain.booking_calendars import (
    WEEKDAYS,
    BookingCalendar,
    CalendarType,
    Member,
    WorkingSpan,
)
from calsync_availability.domain.errors import InvalidWindow, OutlookNotSupportedForEventCalendars
from calsync_availability.domain.slots import (
    Busy,
    Slot,
    free_slots,
    require_outlook_supported,
    round_robin_order,
)

NEW_YORK = "America/New_York"
BUCHAREST = "Europe/Bucharest"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # long before every window: no notice in the way


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def hours(*spans: tuple[int, str, str]) -> tuple[WorkingSpan, ...]:
    def minute(text: str) -> int:
        h, m = text.split(":")
        return int(h) * 60 + int(m)

    return tuple(sorted(WorkingSpan(d, minute(s), minute(e)) for d, s, e in spans))


NINE_TO_FIVE = hours(*((d, "09:00", "17:00") for d in range(5)))


def member(user_id: str, zone: str, working: tuple[WorkingSpan, ...] = NINE_TO_FIVE) -> Member:
    return Member(user_id=user_id, time_zone=zone, working_hours=working)


def calendar(
    *members: Member,
    type: CalendarType = "personal",
    slot: int = 60,
    before: int = 0,
    after: int = 0,
    notice: int = 0,
    outlook_conflicts: bool | None = None,
) -> BookingCalendar:
    return BookingCalendar(
        id=uuid4(),
        sub_account_id="sa-1",
        name="Consultations",
        type=type,
        members=members,
        slot_length=timedelta(minutes=slot),
        buffer_before=timedelta(minutes=before),
        buffer_after=timedelta(minutes=after),
        minimum_notice=timedelta(minutes=notice),
        outlook_conflicts=type != "event" if outlook_conflicts is None else outlook_conflicts,
        on_stale="fail_closed",
        stale_after=timedelta(seconds=900),
        version=1,
        created_at=EPOCH,
        updated_at=EPOCH,
    )


def local_starts(slots: Sequence[Slot], zone: str) -> list[str]:
    return [s.start.astimezone(ZoneInfo(zone)).strftime("%a %d %H:%M") for s in slots]


# --- grid, buffers, notice -----------------------------------------------------------------------


def test_slots_are_aligned_from_each_working_span_start() -> None:
    cal = calendar(member("a", "UTC", hours((0, "09:15", "12:00"))), slot=45)
    slots = free_slots(cal, {}, start=utc(2026, 6, 1), end=utc(2026, 6, 2), now=EPOCH)
    assert local_starts(slots, "UTC") == ["Mon 01 09:15", "Mon 01 10:00", "Mon 01 10:45"]
    assert all(s.end - s.start == timedelta(minutes=45) for s in slots)
    assert all(s.members == ("a",) for s in slots)


def test_a_window_that_starts_mid_span_keeps_the_span_grid() -> None:
    cal = calendar(member("a", "UTC", hours((0, "09:15", "12:00"))), slot=45)
    slots = free_slots(cal, {}, start=utc(2026, 6, 1, 9, 30), end=utc(2026, 6, 2), now=EPOCH)
    assert local_starts(slots, "UTC") == ["Mon 01 10:00", "Mon 01 10:45"]


def test_buffers_keep_clear_of_busy_time_on_both_sides() -> None:
    cal = calendar(member("a", "UTC"), slot=30, before=15, after=15)
    busy = {"a": [Busy(utc(2026, 6, 1, 10), utc(2026, 6, 1, 11), outlook=True)]}
    slots = free_slots(cal, busy, start=utc(2026, 6, 1, 9), end=utc(2026, 6, 1, 12), now=EPOCH)
    # 09:30-10:00 needs 10:00-10:15 free (after); 11:00-11:30 needs 10:45-11:00 free (before).
    assert local_starts(slots, "UTC") == ["Mon 01 09:00", "Mon 01 11:30"]


def test_buffers_need_no_working_hours() -> None:
    cal = calendar(member("a", "UTC"), slot=60, before=30, after=30)
    slots = free_slots(cal, {}, start=utc(2026, 6, 1), end=utc(2026, 6, 2), now=EPOCH)
    assert local_starts(slots, "UTC")[0] == "Mon 01 09:00"
    assert local_starts(slots, "UTC")[-1] == "Mon 01 16:00"


def test_minimum_notice_counts_from_now() -> None:
    cal = calendar(member("a", "UTC"), slot=30, notice=60)
    now = utc(2026, 6, 1, 9, 10)
    slots = free_slots(cal, {}, start=utc(2026, 6, 1), end=utc(2026, 6, 2), now=now)
    assert local_starts(slots, "UTC")[0] == "Mon 01 10:30"  # first grid start after 10:10


def test_a_night_shift_offers_slots_across_midnight() -> None:
    cal = calendar(member("a", "UTC", hours((0, "22:00", "24:00"), (1, "00:00", "02:00"))), slot=90)
    slots = free_slots(cal, {}, start=utc(2026, 6, 1), end=utc(2026, 6, 3), now=EPOCH)
    assert local_starts(slots, "UTC") == ["Mon 01 22:00", "Mon 01 23:30", "Tue 02 00:00"]


def test_the_window_must_be_ordered_aware_and_bounded() -> None:
    cal = calendar(member("a", "UTC"))
    with pytest.raises(InvalidWindow):
        free_slots(cal, {}, start=utc(2026, 6, 2), end=utc(2026, 6, 1), now=EPOCH)
    with pytest.raises(InvalidWindow):
        free_slots(cal, {}, start=datetime(2026, 6, 1), end=utc(2026, 6, 2), now=EPOCH)
    with pytest.raises(InvalidWindow):
        free_slots(cal, {}, start=utc(2026, 1, 1), end=utc(2026, 6, 1), now=EPOCH)


# --- by type -------------------------------------------------------------------------------------


def test_round_robin_offers_a_slot_when_any_member_is_free_and_says_who() -> None:
    cal = calendar(member("a", "UTC"), member("b", "UTC"), type="round_robin")
    busy = {
        "a": [Busy(utc(2026, 6, 1, 9), utc(2026, 6, 1, 10), outlook=True)],
        "b": [Busy(utc(2026, 6, 1, 9), utc(2026, 6, 1, 11), outlook=False)],
    }
    slots = free_slots(cal, busy, start=utc(2026, 6, 1, 9), end=utc(2026, 6, 1, 12), now=EPOCH)
    assert [(s.start.hour, s.members) for s in slots] == [(10, ("a",)), (11, ("a", "b"))]


def test_collective_offers_only_what_every_member_has_free() -> None:
    cal = calendar(member("a", "UTC"), member("b", "UTC"), type="collective")
    busy = {"b": [Busy(utc(2026, 6, 1, 9), utc(2026, 6, 1, 11), outlook=True)]}
    slots = free_slots(cal, busy, start=utc(2026, 6, 1, 9), end=utc(2026, 6, 1, 12), now=EPOCH)
    assert [(s.start.hour, s.members) for s in slots] == [(11, ("a", "b"))]


@pytest.mark.parametrize("kind", ["service", "class"])
def test_single_host_types_offer_the_first_members_time(kind: CalendarType) -> None:
    cal = calendar(member("a", "UTC"), member("b", "UTC"), type=kind)
    busy = {"a": [Busy(utc(2026, 6, 1, 9), utc(2026, 6, 1, 11), outlook=True)]}
    slots = free_slots(cal, busy, start=utc(2026, 6, 1, 9), end=utc(2026, 6, 1, 12), now=EPOCH)
    assert [(s.start.hour, s.members) for s in slots] == [(11, ("a",))]


def test_event_calendars_refuse_outlook_time_and_use_their_own_schedule() -> None:
    cal = calendar(member("a", "UTC"), type="event")
    window = {"start": utc(2026, 6, 1, 9), "end": utc(2026, 6, 1, 12), "now": EPOCH}
    with pytest.raises(OutlookNotSupportedForEventCalendars) as refused:
        free_slots(cal, {"a": [Busy(utc(2026, 6, 1, 9), utc(2026, 6, 1, 10), True)]}, **window)
    assert refused.value.code == "outlook_not_supported_for_event_calendars"
    assert refused.value.status == 422
    with pytest.raises(OutlookNotSupportedForEventCalendars):
        require_outlook_supported(cal)
    own = {"a": [Busy(utc(2026, 6, 1, 9), utc(2026, 6, 1, 10), outlook=False)]}
    assert [s.start.hour for s in free_slots(cal, own, **window)] == [10, 11]


def test_a_calendar_without_outlook_conflicts_ignores_outlook_time() -> None:
    cal = calendar(member("a", "UTC"), type="round_robin", outlook_conflicts=False)
    busy = {
        "a": [
            Busy(utc(2026, 6, 1, 9), utc(2026, 6, 1, 10), outlook=True),
            Busy(utc(2026, 6, 1, 10), utc(2026, 6, 1, 11), outlook=False),
        ]
    }
    slots = free_slots(cal, busy, start=utc(2026, 6, 1, 9), end=utc(2026, 6, 1, 12), now=EPOCH)
    assert [s.start.hour for s in slots] == [9, 11]
    require_outlook_supported(cal)  # not an event calendar: asking is allowed


def test_round_robin_order_rotates_after_the_last_assigned_member() -> None:
    cal = calendar(*(member(u, "UTC") for u in "abcd"), type="round_robin")
    assert round_robin_order(cal, {"a", "b", "c", "d"}, None) == ("a", "b", "c", "d")
    assert round_robin_order(cal, {"a", "b", "c", "d"}, "b") == ("c", "d", "a", "b")
    assert round_robin_order(cal, {"a", "d"}, "b") == ("d", "a")
    assert round_robin_order(cal, {"a", "c"}, "gone") == ("a", "c")
    assert round_robin_order(cal, set(), "a") == ()


# --- DST weeks and zones ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "start", "end", "switch"),
    [
        (NEW_YORK, utc(2026, 3, 5), utc(2026, 3, 11), "spring forward 8 March"),
        (NEW_YORK, utc(2026, 10, 29), utc(2026, 11, 4), "fall back 1 November"),
        (BUCHAREST, utc(2026, 3, 26), utc(2026, 4, 1), "spring forward 29 March"),
        (BUCHAREST, utc(2026, 10, 22), utc(2026, 10, 28), "fall back 25 October"),
    ],
)
def test_a_dst_week_offers_nine_to_five_local_every_working_day(
    zone: str, start: datetime, end: datetime, switch: str
) -> None:
    cal = calendar(member("a", zone), slot=60)
    slots = free_slots(cal, {}, start=start, end=end, now=EPOCH)
    tz = ZoneInfo(zone)
    by_day: dict[str, list[str]] = {}
    for s in slots:
        by_day.setdefault(s.start.astimezone(tz).strftime("%a %d"), []).append(
            s.start.astimezone(tz).strftime("%H:%M")
        )
    assert len(by_day) == 4, (switch, by_day)  # Thursday, Friday, Monday, Tuesday
    for day, starts in by_day.items():
        assert starts == [f"{h:02d}:00" for h in range(9, 17)], (switch, day)
    offsets = {s.start.astimezone(tz).utcoffset() for s in slots}
    assert len(offsets) == 2, (switch, offsets)  # the week straddles the switch


def test_a_member_in_another_zone_than_the_query() -> None:
    cal = calendar(member("a", BUCHAREST), slot=60)
    new_york = ZoneInfo(NEW_YORK)
    start = datetime(2026, 6, 1, 0, 0, tzinfo=new_york)  # Monday 07:00 in Bucharest
    end = datetime(2026, 6, 2, 0, 0, tzinfo=new_york)
    slots = free_slots(cal, {}, start=start, end=end, now=EPOCH)
    assert local_starts(slots, BUCHAREST) == [f"Mon 01 {h:02d}:00" for h in range(9, 17)]
    same = free_slots(cal, {}, start=start.astimezone(UTC), end=end.astimezone(UTC), now=EPOCH)
    assert same == slots


@pytest.mark.parametrize(
    ("day", "common_hours"),
    [(4, 1), (11, 2), (18, 2), (25, 2), (32, 1)],  # Wednesdays of March 2026 and 1 April
)
def test_collective_across_new_york_and_bucharest_follows_both_switches(
    day: int, common_hours: int
) -> None:
    # Usually seven hours apart; six between the US switch (8 March) and the EU's (29 March).
    cal = calendar(member("ny", NEW_YORK), member("ro", BUCHAREST), type="collective", slot=60)
    start = utc(2026, 3, 1) + timedelta(days=day - 1)
    slots = free_slots(cal, {}, start=start, end=start + timedelta(days=1), now=EPOCH)
    assert local_starts(slots, NEW_YORK) == [
        start.strftime("%a %d ") + f"{9 + i:02d}:00" for i in range(common_hours)
    ]
    assert all(s.members == ("ny", "ro") for s in slots)


# --- properties over random calendars, busy time and windows -----------------------------------

ZONES = [NEW_YORK, BUCHAREST, "Australia/Lord_Howe", "Asia/Kathmandu", "UTC", "America/Santiago"]


@st.composite
def working_hours(draw: st.DrawFn) -> tuple[WorkingSpan, ...]:
    spans: list[WorkingSpan] = []
    for day in range(7):
        cuts = sorted(draw(st.sets(st.integers(0, 96), max_size=4)))
        for a, b in zip(cuts[::2], cuts[1::2], strict=False):
            if a < b:
                spans.append(WorkingSpan(day, a * 15, b * 15))
    return tuple(spans)


#: Windows around the 2026 switches of both hemispheres, and an ordinary week.
ANCHORS = [utc(2026, 3, 6), utc(2026, 3, 27), utc(2026, 4, 3), utc(2026, 10, 23),
           utc(2026, 10, 30), utc(2026, 6, 10)]  # fmt: skip


@st.composite
def scenarios(
    draw: st.DrawFn,
    kinds: Sequence[CalendarType] = ("personal", "round_robin", "collective", "event"),
    zones: Sequence[str] = tuple(ZONES),
) -> tuple[BookingCalendar, dict[str, list[Busy]], datetime, datetime, datetime]:
    kind = draw(st.sampled_from(kinds))
    count = 1 if kind == "personal" else draw(st.integers(1, 3))
    members = [
        member(f"m{i}", draw(st.sampled_from(zones)), draw(working_hours())) for i in range(count)
    ]
    cal = calendar(
        *members,
        type=kind,
        slot=draw(st.sampled_from([15, 20, 30, 45, 60, 90])),
        before=draw(st.sampled_from([0, 5, 15, 30])),
        after=draw(st.sampled_from([0, 10, 15, 60])),
        notice=draw(st.sampled_from([0, 30, 240, 1440])),
    )
    anchor = draw(st.sampled_from(ANCHORS))
    start = anchor + timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
    end = start + timedelta(minutes=draw(st.integers(1, 4 * 24 * 60)))
    now = start + timedelta(minutes=draw(st.integers(-24 * 60, 24 * 60)))
    busy: dict[str, list[Busy]] = {}
    for m in members:
        for _ in range(draw(st.integers(0, 8))):
            at = start + timedelta(minutes=draw(st.integers(-600, 5 * 24 * 60)))
            length = timedelta(minutes=draw(st.integers(1, 300)))
            busy.setdefault(m.user_id, []).append(Busy(at, at + length, kind != "event"))
    return cal, busy, start, end, now


def _working_by_the_clock(m: Member, slot: Slot) -> bool | None:
    """Whether the member's wall clock reads working time through the whole slot, minute by
    minute; None when a reading is ambiguous (the repeated hour: the rule picks an occurrence)."""
    tz = ZoneInfo(m.time_zone)
    at, ambiguous = slot.start, False
    while at < slot.end:
        reading = at.astimezone(tz)
        naive = reading.replace(tzinfo=None)
        other = naive.replace(tzinfo=tz, fold=1 - reading.fold)
        ambiguous |= other.utcoffset() != reading.utcoffset()
        minute = reading.hour * 60 + reading.minute
        inside = any(
            s.weekday == reading.weekday() and s.start_minute <= minute < s.end_minute
            for s in m.working_hours
        )
        if not inside:
            return None if ambiguous or _in_fold(naive, tz) else False
        at += timedelta(minutes=1)
    return None if ambiguous else True


def _in_fold(naive: datetime, tz: ZoneInfo) -> bool:
    return (
        naive.replace(tzinfo=tz, fold=0).utcoffset() != naive.replace(tzinfo=tz, fold=1).utcoffset()
    )


def _clashes(cal: BookingCalendar, busy: list[Busy], slot: Slot) -> bool:
    low, high = slot.start - cal.buffer_before, slot.end + cal.buffer_after
    return any(b.start < high and low < b.end for b in busy)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_slot_keeps_the_contract(
    scenario: tuple[BookingCalendar, dict[str, list[Busy]], datetime, datetime, datetime],
) -> None:
    cal, busy, start, end, now = scenario
    slots = free_slots(cal, busy, start=start, end=end, now=now)
    assert slots == sorted(slots, key=lambda s: s.start)
    assert len({s.start for s in slots}) == len(slots)
    members = {m.user_id: m for m in cal.members}
    for slot in slots:
        assert start <= slot.start and slot.end <= end  # inside the window
        assert slot.end - slot.start == cal.slot_length
        assert slot.start >= now + cal.minimum_notice  # never before now + notice
        assert slot.members, slot
        for user_id in slot.members:
            # Within working hours (by the member's own clock), clear of busy time and buffers.
            assert _working_by_the_clock(members[user_id], slot) is not False, (user_id, slot)
            assert not _clashes(cal, busy.get(user_id, []), slot), (user_id, slot)
        if cal.type == "collective":
            assert slot.members == tuple(members)
        elif cal.type != "round_robin":
            assert slot.members == (cal.members[0].user_id,)
        else:  # every member left out is busy or off work then
            for user_id in set(members) - set(slot.members):
                clock = _working_by_the_clock(members[user_id], slot)
                assert clock is not True or _clashes(cal, busy.get(user_id, []), slot)


@settings(max_examples=200, deadline=None)
@given(scenarios(kinds=("personal", "event"), zones=("UTC",)))
def test_each_free_grid_time_of_a_single_host_is_offered(
    scenario: tuple[BookingCalendar, dict[str, list[Busy]], datetime, datetime, datetime],
) -> None:
    cal, busy, start, end, now = scenario
    host = cal.members[0]  # in UTC: the grid below has no switch to reason about
    offered = {s.start for s in free_slots(cal, busy, start=start, end=end, now=now)}
    day = (start - timedelta(days=1)).replace(hour=0, minute=0)
    while day < end + timedelta(days=1):
        for span in host.working_hours:
            if span.weekday != day.weekday():
                continue
            at = day + timedelta(minutes=span.start_minute)
            while at < day + timedelta(minutes=span.end_minute):
                slot = Slot(at, at + cal.slot_length, (host.user_id,))
                if (
                    start <= at
                    and slot.end <= end
                    and at >= now + cal.minimum_notice
                    and _working_by_the_clock(host, slot)
                    and not _clashes(cal, busy.get(host.user_id, []), slot)
                ):
                    assert at in offered, (at, WEEKDAYS[at.weekday()])
                at += cal.slot_length
        day += timedelta(days=1)
