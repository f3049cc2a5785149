"""Recurrence expansion (pure) and series behaviour over HTTP: occurrences, exceptions, cancels."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from msgraph_emulator.mailbox.recurrence import normalize, occurrences


def _expand(
    pattern: dict[str, Any], rng: dict[str, Any], start: datetime, n: int
) -> list[datetime]:
    rec = normalize({"pattern": pattern, "range": rng}, "UTC")
    out = []
    for s, _ in occurrences(rec, start, start.replace(hour=start.hour + 1)):
        out.append(s)
        if len(out) == n:
            break
    return out


def test_weekly_keeps_local_time_across_dst() -> None:
    ny = ZoneInfo("America/New_York")
    rec = normalize(
        {
            "pattern": {"type": "weekly", "daysOfWeek": ["friday"]},
            "range": {
                "type": "numbered",
                "startDate": "2024-03-01",
                "numberOfOccurrences": 3,
                "recurrenceTimeZone": "Eastern Standard Time",
            },
        },
        "Eastern Standard Time",
    )
    start = datetime(2024, 3, 1, 9, 0, tzinfo=ny)
    got = [s.astimezone(UTC).hour for s, _ in occurrences(rec, start, start.replace(hour=10))]
    assert got == [14, 14, 13]  # 09:00 EST then 09:00 EDT (DST began 2024-03-10)
    assert rec["range"]["endDate"] == "0001-01-01"
    assert rec["pattern"] == {
        "type": "weekly",
        "interval": 1,
        "month": 0,
        "dayOfMonth": 0,
        "daysOfWeek": ["friday"],
        "firstDayOfWeek": "sunday",
        "index": "first",
    }


def test_absolute_monthly_31st_falls_on_month_end() -> None:
    start = datetime(2024, 1, 31, 9, tzinfo=UTC)
    got = _expand(
        {"type": "absoluteMonthly", "dayOfMonth": 31},
        {"type": "noEnd", "startDate": "2024-01-31"},
        start,
        4,
    )
    assert [d.date().isoformat() for d in got] == [
        "2024-01-31",
        "2024-02-29",
        "2024-03-31",
        "2024-04-30",
    ]


def test_relative_monthly_and_yearly() -> None:
    start = datetime(2024, 1, 1, 9, tzinfo=UTC)
    last_fri = _expand(
        {"type": "relativeMonthly", "daysOfWeek": ["friday"], "index": "last"},
        {"type": "noEnd", "startDate": "2024-01-01"},
        start,
        3,
    )
    assert [d.day for d in last_fri] == [26, 23, 29]
    thanksgiving = _expand(
        {"type": "relativeYearly", "daysOfWeek": ["thursday"], "index": "fourth", "month": 11},
        {"type": "noEnd", "startDate": "2024-01-01"},
        start,
        2,
    )
    assert [d.date().isoformat() for d in thanksgiving] == ["2024-11-28", "2025-11-27"]
    leap = _expand(
        {"type": "absoluteYearly", "dayOfMonth": 29, "month": 2},
        {"type": "noEnd", "startDate": "2024-01-01"},
        start,
        2,
    )
    assert [d.date().isoformat() for d in leap] == ["2024-02-29", "2025-02-28"]


def test_daily_interval_end_date_inclusive_and_weekly_interval() -> None:
    start = datetime(2024, 5, 1, 8, tzinfo=UTC)
    daily = _expand(
        {"type": "daily", "interval": 2},
        {"type": "endDate", "startDate": "2024-05-01", "endDate": "2024-05-07"},
        start,
        10,
    )
    assert [d.day for d in daily] == [1, 3, 5, 7]
    biweekly = _expand(
        {"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "wednesday"]},
        {"type": "numbered", "startDate": "2024-05-01", "numberOfOccurrences": 4},
        start,
        10,
    )
    assert [d.day for d in biweekly] == [1, 13, 15, 27]


SERIES = {
    "subject": "Standup",
    "start": {"dateTime": "2024-03-04T09:00:00", "timeZone": "Eastern Standard Time"},
    "end": {"dateTime": "2024-03-04T09:30:00", "timeZone": "Eastern Standard Time"},
    "recurrence": {
        "pattern": {"type": "weekly", "daysOfWeek": ["monday"]},
        "range": {"type": "numbered", "startDate": "2024-03-04", "numberOfOccurrences": 4},
    },
}
VIEW = "/v1.0/me/calendarView?startDateTime=2024-03-01T00:00:00Z&endDateTime=2024-04-01T00:00:00Z"


async def test_series_in_calendar_view(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    master = await g.post("/v1.0/me/events", SERIES)
    assert master["type"] == "seriesMaster"
    assert master["recurrence"]["range"]["recurrenceTimeZone"] == "Eastern Standard Time"
    view = (await g.get(VIEW))["value"]
    assert [(i["type"], i["start"]["dateTime"]) for i in view] == [
        ("occurrence", "2024-03-04T14:00:00.0000000"),
        ("occurrence", "2024-03-11T13:00:00.0000000"),
        ("occurrence", "2024-03-18T13:00:00.0000000"),
        ("occurrence", "2024-03-25T13:00:00.0000000"),
    ]
    assert {i["seriesMasterId"] for i in view} == {master["id"]}
    assert view[1]["originalStart"] == "2024-03-11T13:00:00Z"
    assert len({i["iCalUId"] for i in view} | {master["iCalUId"]}) == 5
    assert all(i["recurrence"] is None and i["subject"] == "Standup" for i in view)
    occ = await g.get(f"/v1.0/me/events/{view[2]['id']}")
    assert occ["type"] == "occurrence" and occ["id"] == view[2]["id"]
    listed = (await g.get("/v1.0/me/events"))["value"]
    assert [e["id"] for e in listed] == [master["id"]]


async def test_exception_and_cancelled_occurrence(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    master = await g.post("/v1.0/me/events", SERIES)
    view = (await g.get(VIEW))["value"]
    moved = {
        "subject": "Standup (moved)",
        "start": {"dateTime": "2024-03-12T15:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2024-03-12T15:30:00", "timeZone": "UTC"},
    }
    status, exc, _ = await g.call("PATCH", f"/v1.0/me/events/{view[1]['id']}", moved)
    assert status == 200 and exc["type"] == "exception" and exc["id"] == view[1]["id"]
    assert exc["originalStart"] == "2024-03-11T13:00:00Z"
    status, _, _ = await g.call("DELETE", f"/v1.0/me/events/{view[2]['id']}")
    assert status == 204
    after = (await g.get(VIEW))["value"]
    assert [(i["type"], i["start"]["dateTime"], i["subject"]) for i in after] == [
        ("occurrence", "2024-03-04T14:00:00.0000000", "Standup"),
        ("exception", "2024-03-12T15:00:00.0000000", "Standup (moved)"),
        ("occurrence", "2024-03-25T13:00:00.0000000", "Standup"),
    ]
    status, _, _ = await g.call("GET", f"/v1.0/me/events/{view[2]['id']}")
    assert status == 404
    # A series-wide change keeps exceptions' own fields and propagates the others.
    await g.call("PATCH", f"/v1.0/me/events/{master['id']}", {"showAs": "oof"})
    again = (await g.get(VIEW))["value"]
    assert [i["showAs"] for i in again] == ["oof", "oof", "oof"]
    assert again[1]["subject"] == "Standup (moved)"
    # Moving the series drops its exceptions (as Outlook does).
    later = {"start": SERIES["start"] | {"dateTime": "2024-03-04T10:00:00"}}
    later["end"] = SERIES["end"] | {"dateTime": "2024-03-04T10:30:00"}
    await g.call("PATCH", f"/v1.0/me/events/{master['id']}", later)
    assert [i["type"] for i in (await g.get(VIEW))["value"]] == ["occurrence"] * 4


async def test_deleting_master_removes_every_instance(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    master = await g.post("/v1.0/me/events", SERIES)
    status, _, _ = await g.call("DELETE", f"/v1.0/me/events/{master['id']}")
    assert status == 204
    assert (await g.get(VIEW))["value"] == []


async def test_invalid_recurrence_is_refused(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    bad = SERIES | {
        "recurrence": {"pattern": {"type": "weekly"}, "range": SERIES["recurrence"]["range"]}
    }  # type: ignore[index]
    status, err, _ = await g.call("POST", "/v1.0/me/events", bad)
    assert status == 400 and err["error"]["code"] == "ErrorInvalidRequest"
    worse = SERIES | {"recurrence": {"pattern": {"type": "hourly"}, "range": {}}}
    status, err, _ = await g.call("POST", "/v1.0/me/events", worse)
    assert status == 400
