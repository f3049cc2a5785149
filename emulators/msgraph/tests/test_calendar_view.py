"""calendarView: window rules, offsets, paging, Prefer headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _event(day: int, hour: int, subject: str = "e", **extra: Any) -> dict[str, Any]:
    return {
        "subject": subject,
        "start": {"dateTime": f"2024-06-{day:02d}T{hour:02d}:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"2024-06-{day:02d}T{hour + 1:02d}:00:00", "timeZone": "UTC"},
        **extra,
    }


async def test_window_is_required_and_bounded(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    for path in (
        "/v1.0/me/calendarView",
        "/v1.0/me/calendar/calendarView?startDateTime=2024-01-01T00:00:00Z",
    ):
        status, err, _ = await g.call("GET", path)
        assert status == 400 and err["error"]["code"] == "ErrorInvalidParameter"
    too_wide = (
        "/v1.0/me/calendarView?startDateTime=2020-01-01T00:00:00Z&endDateTime=2025-01-01T00:00:00Z"
    )
    status, err, _ = await g.call("GET", too_wide)
    assert status == 400 and err["error"] == err["error"] | {
        "code": "ErrorInvalidRequest",
        "message": "The range between the start and end dates is greater than the allowed range. "
        "Maximum number of days: 1825",
    }
    ok = "/v1.0/me/calendarView?startDateTime=2020-01-01T00:00:00Z&endDateTime=2024-12-30T00:00:00Z"
    assert (await g.get(ok))["value"] == []


async def test_overlap_and_offsets(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    await g.post("/v1.0/me/events", _event(3, 9, "nine"))
    await g.post("/v1.0/me/events", _event(3, 11, "eleven"))
    await g.post("/v1.0/me/events", _event(4, 9, "next day"))
    # 10:30+02:00 = 08:30Z .. 12:30+02:00 = 10:30Z overlaps only "nine".
    path = (
        "/v1.0/me/calendarView?startDateTime=2024-06-03T10:30:00%2B02:00"
        "&endDateTime=2024-06-03T12:30:00%2B02:00"
    )
    assert [e["subject"] for e in (await g.get(path))["value"]] == ["nine"]
    # No offset means UTC; the end is exclusive (an event starting at the end is out).
    path = "/v1.0/me/calendarView?startDateTime=2024-06-03T10:00:00&endDateTime=2024-06-03T11:00:00"
    assert (await g.get(path))["value"] == []


async def test_paging_and_prefer(graph_as: Callable[..., Any], client: Any) -> None:
    g = graph_as()
    resp = await client.post(f"/_emulator/users/{g.user.id}/calendars", json={"name": "Work"})
    cid = (await resp.json())["id"]
    for day in range(1, 8):
        await g.post(f"/v1.0/me/calendars/{cid}/events", _event(day, 9, f"d{day}"))
    path = (
        f"/v1.0/me/calendars/{cid}/calendarView?startDateTime=2024-06-01T00:00:00Z"
        "&endDateTime=2024-07-01T00:00:00Z"
    )
    prefer = 'odata.maxpagesize=3, outlook.timezone="W. Europe Standard Time"'
    status, first, headers = await g.call("GET", path, headers={"Prefer": prefer})
    assert status == 200 and len(first["value"]) == 3
    assert headers["Preference-Applied"] == (
        'outlook.timezone="W. Europe Standard Time",odata.maxpagesize=3'
    )
    assert first["value"][0]["start"] == {
        "dateTime": "2024-06-01T11:00:00.0000000",
        "timeZone": "W. Europe Standard Time",
    }
    seen = [e["subject"] for e in first["value"]]
    link = first["@odata.nextLink"]
    while link:
        status, page, _ = await g.call("GET", link, headers={"Prefer": prefer})
        assert status == 200
        seen += [e["subject"] for e in page["value"]]
        link = page.get("@odata.nextLink")
    assert seen == [f"d{d}" for d in range(1, 8)]
    assert (await g.get(path + "&$top=2"))["@odata.nextLink"].count("$skip=2") == 1
    selected = await g.get(path + "&$select=showAs,start,end&$top=999")
    assert set(selected["value"][0]) == {"@odata.etag", "id", "showAs", "start", "end"}


async def test_calendar_view_needs_calendar_scope(graph_as: Callable[..., Any]) -> None:
    g = graph_as(scopes=["User.Read"])
    status, err, _ = await g.call(
        "GET", "/v1.0/me/calendarView?startDateTime=2024-06-01&endDateTime=2024-06-02"
    )
    assert status == 403 and err["error"]["code"] == "ErrorAccessDenied"
    status, err, _ = await g.call("GET", "/v1.0/me/calendarView", headers={"Authorization": ""})
    assert status == 401 and err["error"]["code"] == "InvalidAuthenticationToken"
