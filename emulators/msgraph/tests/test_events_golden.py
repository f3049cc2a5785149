"""Golden tests: the emulator's payloads have the keys and JSON types of Microsoft's samples."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "golden"
#: Keys the docs' samples show that the emulator deliberately leaves out (see docs/calendars.md).
NOT_SERVED = {"@odata.id"}


def golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text("utf-8"))


def _kind(value: Any) -> str:
    return (
        "number"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else type(value).__name__
    )


def assert_shape(ours: Any, theirs: Any, path: str = "$", *, exact: bool = True) -> None:
    """Same keys (``exact``) or a superset, and the same JSON type at every golden key."""
    assert _kind(ours) == _kind(theirs), f"{path}: {_kind(ours)} != {_kind(theirs)}"
    if isinstance(theirs, dict):
        want = set(theirs) - NOT_SERVED
        if exact:
            assert set(ours) == want, (
                f"{path}: extra {set(ours) - want}, missing {want - set(ours)}"
            )
        else:
            assert want <= set(ours), f"{path}: missing {want - set(ours)}"
        for key in want:
            assert_shape(ours[key], theirs[key], f"{path}.{key}", exact=exact)
    elif isinstance(theirs, list) and theirs and ours:
        for item in ours:
            assert_shape(item, theirs[0], f"{path}[]", exact=exact)


BRUNCH = {
    "subject": "Let's go brunch",
    "body": {"contentType": "HTML", "content": "<html><body>Does noon work for you?</body></html>"},
    "start": {"dateTime": "2017-04-15T11:00:00", "timeZone": "Pacific Standard Time"},
    "end": {"dateTime": "2017-04-15T12:00:00", "timeZone": "Pacific Standard Time"},
    "location": {"displayName": "Restaurant nearby"},
    "attendees": [{"emailAddress": {"address": "samanthab@contoso.com", "name": "Samantha Booth"}}],
}


async def test_event_matches_get_event_sample(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    ev = await g.post("/v1.0/me/events", BRUNCH)
    got = await g.get(f"/v1.0/me/events/{ev['id']}")
    assert_shape(got, golden("event_get.json"))


async def test_calendar_list_matches_sample(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    assert_shape(await g.get("/v1.0/me/calendars"), golden("calendar_list.json"))


async def test_recurrence_matches_sample(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    body = BRUNCH | {
        "start": {"dateTime": "2017-09-04T12:00:00", "timeZone": "Pacific Standard Time"},
        "end": {"dateTime": "2017-09-04T14:00:00", "timeZone": "Pacific Standard Time"},
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["Monday"]},
            "range": {"type": "endDate", "startDate": "2017-09-04", "endDate": "2017-12-31"},
        },
    }
    master = await g.post("/v1.0/me/events", body)
    assert master["recurrence"] == golden("recurrence_weekly.json")
    sample = golden("event_get.json") | {"recurrence": golden("recurrence_weekly.json")}
    sample["type"] = "seriesMaster"
    assert_shape(master, sample | {"@odata.context": ""})


async def test_delta_page_matches_sample(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    window = "startDateTime=2016-12-01T00:00:00Z&endDateTime=2017-01-01T00:00:00Z"
    keep = BRUNCH | {
        "start": {"dateTime": "2016-12-09T20:30:00", "timeZone": "UTC"},
        "end": {"dateTime": "2016-12-09T22:00:00", "timeZone": "UTC"},
    }
    a = await g.post("/v1.0/me/events", keep)
    b = await g.post("/v1.0/me/events", keep)
    first = await g.get(f"/v1.0/me/calendarView/delta?{window}")
    await g.call("DELETE", f"/v1.0/me/events/{b['id']}")
    await g.call("PATCH", f"/v1.0/me/events/{a['id']}", {"subject": "Plan shopping list"})
    status, page, _ = await g.call(
        "GET", first["@odata.deltaLink"], headers={"Prefer": "odata.maxpagesize=1"}
    )
    assert status == 200
    sample = golden("delta_page.json")
    assert set(page) == set(sample)
    last = await g.get(page["@odata.nextLink"])
    assert set(last) == {"@odata.context", "@odata.deltaLink", "value"}
    items = page["value"] + last["value"]
    removed, updated = sorted(items, key=lambda i: "@removed" not in i)
    assert_shape(removed, sample["value"][1])
    assert_shape(updated, sample["value"][0], exact=False)


async def test_delta_occurrence_matches_sample(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    series = BRUNCH | {
        "start": {"dateTime": "2020-03-02T16:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2020-03-02T16:30:00", "timeZone": "UTC"},
        "recurrence": {
            "pattern": {"type": "daily"},
            "range": {"type": "numbered", "startDate": "2020-03-02", "numberOfOccurrences": 2},
        },
    }
    await g.post("/v1.0/me/events", series)
    window = "startDateTime=2020-03-01T00:00:00Z&endDateTime=2020-04-01T00:00:00Z"
    page = await g.get(f"/v1.0/me/calendarView/delta?{window}")
    assert len(page["value"]) == 2
    for item in page["value"]:
        assert_shape(item, golden("delta_occurrence.json"))


async def test_mailbox_settings_matches_sample(graph_as: Callable[..., Any]) -> None:
    g = graph_as(scopes=["User.Read"])
    assert_shape(await g.get("/v1.0/me/mailboxSettings"), golden("mailbox_settings.json"))
