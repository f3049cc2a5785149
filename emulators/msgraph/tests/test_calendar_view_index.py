"""The calendarView index (``mailbox.index``/``mailbox.expansion``) against a brute-force scan.

Random singles (short, multi-day, zero-length), series (every pattern and range kind, several
zones), exceptions and cancellations; then writes that move events, turn a single into a series
and back, and delete. After each step, every window must give exactly the brute-force answer.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from msgraph_emulator.mailbox.instances import start_key
from msgraph_emulator.mailbox.mailboxes import Mailboxes
from msgraph_emulator.mailbox.model import Event
from msgraph_emulator.mailbox.parse import parse_event
from msgraph_emulator.mailbox.recurrence import occurrences
from msgraph_emulator.mailbox.store import Mailbox
from msgraph_emulator.mailbox.writes import create_event, delete_event, update_event

ZONES = ("UTC", "Pacific Standard Time", "W. Europe Standard Time", "Asia/Kolkata")
BASE = datetime(2024, 1, 1, tzinfo=UTC)
Row = tuple[str, datetime, datetime]


def _noop(*_: Any) -> None:
    return None


def _times(rng: random.Random, minutes: int) -> dict[str, Any]:
    start = BASE + timedelta(minutes=rng.randrange(0, 400 * 24 * 60, 15))
    zone = rng.choice(ZONES)
    fmt = "%Y-%m-%dT%H:%M:%S"
    end = start + timedelta(minutes=minutes)
    return {
        "start": {"dateTime": start.strftime(fmt), "timeZone": zone},
        "end": {"dateTime": end.strftime(fmt), "timeZone": zone},
    }


def _recurrence(rng: random.Random, start_date: str) -> dict[str, Any]:
    kind = rng.choice(["daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly"])
    pattern: dict[str, Any] = {"type": kind, "interval": rng.choice([1, 2, 3])}
    if kind in ("weekly", "relativeMonthly"):
        pattern["daysOfWeek"] = rng.sample(["monday", "wednesday", "friday", "sunday"], 2)
        pattern["index"] = rng.choice(["first", "second", "last"])
    if kind in ("absoluteMonthly", "absoluteYearly"):
        pattern["dayOfMonth"] = rng.choice([1, 15, 29, 31])
        pattern["month"] = rng.randint(1, 12)
    rkind = rng.choice(["noEnd", "numbered", "endDate"])
    rng_: dict[str, Any] = {"type": rkind, "startDate": start_date}
    if rkind == "numbered":
        rng_["numberOfOccurrences"] = rng.randint(1, 60)
    if rkind == "endDate":
        end = datetime.fromisoformat(start_date) + timedelta(days=rng.randint(0, 500))
        rng_["endDate"] = end.date().isoformat()
    return {"pattern": pattern, "range": rng_}


def _brute(mb: Mailbox, calendar_id: str, lo: datetime, hi: datetime) -> list[Row]:
    def hit(s: datetime, e: datetime) -> bool:
        s, e = s.astimezone(UTC), e.astimezone(UTC)
        return s < hi and (e > lo or (s == e and s >= lo))

    rows: list[Row] = []
    for ev in mb.by_calendar[calendar_id].values():
        if ev.recurrence is None:
            if hit(ev.start, ev.end):
                rows.append((ev.id, ev.start_utc, ev.end_utc))
            continue
        for s, e in occurrences(ev.recurrence, ev.start, ev.end):
            if s.astimezone(UTC) >= hi:
                break
            k = start_key(s)
            if k not in ev.cancelled and k not in ev.exceptions and hit(s, e):
                rows.append(("occ", s.astimezone(UTC), e.astimezone(UTC)))
        for k, exc in ev.exceptions.items():
            if k not in ev.cancelled and hit(exc.start, exc.end):
                rows.append((exc.id, exc.start_utc, exc.end_utc))
    return sorted(rows, key=lambda r: (r[1], r[2], r[0]))


def _indexed(mb: Mailbox, calendar_id: str, lo: datetime, hi: datetime) -> list[Row]:
    found = mb.instances(calendar_id, lo, hi)
    assert [(i.start_utc, i.id) for i in found] == sorted((i.start_utc, i.id) for i in found)
    rows = [(i.id if i.type != "occurrence" else "occ", i.start_utc, i.end_utc) for i in found]
    return sorted(rows, key=lambda r: (r[1], r[2], r[0]))


def _check(mb: Mailbox, calendar_id: str, rng: random.Random, windows: int = 60) -> int:
    seen = 0
    for _ in range(windows):
        lo = BASE + timedelta(hours=rng.randrange(-24 * 30, 24 * 500))
        hi = lo + timedelta(hours=rng.choice([1, 24, 24 * 7, 24 * 31, 24 * 200]))
        expected = _brute(mb, calendar_id, lo, hi)
        assert _indexed(mb, calendar_id, lo, hi) == expected, (lo, hi)
        seen += len(expected)
    return seen


def test_index_matches_a_full_scan_through_writes() -> None:
    rng = random.Random(20240601)
    mb = Mailbox("u", "t")
    cal = Mailboxes.add_calendar(mb, "Calendar", "A", "a@contoso.example")
    events: list[Event] = []
    for n in range(400):
        minutes = rng.choice([0, 30, 60, 90, 24 * 60, 3 * 24 * 60, 20 * 24 * 60])
        body: dict[str, Any] = {"subject": f"e{n}"} | _times(rng, minutes)
        if n % 8 == 0 and minutes < 24 * 60:
            body["recurrence"] = _recurrence(rng, body["start"]["dateTime"][:10])
        events.append(create_event(mb, cal, parse_event(body), _noop)[0])
    masters = [e for e in events if e.recurrence is not None]
    for master in masters[:20]:  # exceptions (moved anywhere) and cancellations
        first = mb.instances(cal.id, master.start_utc, master.start_utc + timedelta(days=400))
        occ = [i for i in first if i.type == "occurrence"]
        if len(occ) >= 2:
            update_event(mb, occ[0].id, parse_event(_times(rng, 45)), _noop)
            delete_event(mb, occ[1].id, _noop)
    assert _check(mb, cal.id, rng) > 200  # the windows really do hold instances
    # Writes that re-file events: move singles, make one a series and one series single again.
    for event in rng.sample([e for e in events if e.recurrence is None], 30):
        update_event(mb, event.id, parse_event(_times(rng, rng.choice([15, 4 * 24 * 60]))), _noop)
    single = next(e for e in events if e.recurrence is None and e.id in mb.events)
    date = single.start.date().isoformat()
    daily = {"pattern": {"type": "daily"}, "range": {"type": "noEnd", "startDate": date}}
    update_event(mb, single.id, parse_event({"recurrence": daily}), _noop)
    update_event(mb, masters[-1].id, parse_event({"recurrence": None}), _noop)
    for event in rng.sample(events, 40):
        if event.id in mb.events:
            delete_event(mb, event.id, _noop)
    assert _check(mb, cal.id, rng) > 200
    assert len(mb.indexes[cal.id]) == len(mb.by_calendar[cal.id])


def test_expansion_follows_series_changes() -> None:
    mb = Mailbox("u", "t")
    cal = Mailboxes.add_calendar(mb, "Calendar", "A", "a@contoso.example")
    body = {
        "start": {"dateTime": "2024-03-01T09:00:00", "timeZone": "Pacific Standard Time"},
        "end": {"dateTime": "2024-03-01T10:00:00", "timeZone": "Pacific Standard Time"},
        "recurrence": {
            "pattern": {"type": "daily"},
            "range": {"type": "noEnd", "startDate": "2024-03-01"},
        },
    }
    master, _ = create_event(mb, cal, parse_event(body), _noop)
    lo = datetime(2030, 3, 11, tzinfo=UTC)  # far from the start: expanded lazily up to here
    (far,) = mb.instances(cal.id, lo, lo + timedelta(days=1))
    assert far.start_utc == datetime(2030, 3, 11, 16, tzinfo=UTC)  # 09:00 PDT
    later = {
        "start": body["start"] | {"dateTime": "2024-03-01T13:00:00"},
        "end": body["end"] | {"dateTime": "2024-03-01T14:00:00"},
    }
    update_event(mb, master.id, parse_event(later), _noop)
    (moved,) = mb.instances(cal.id, lo, lo + timedelta(days=1))
    assert moved.start_utc == datetime(2030, 3, 11, 20, tzinfo=UTC)
    assert mb.locate(moved.id).instance == moved  # occurrence ids resolve through the cache
