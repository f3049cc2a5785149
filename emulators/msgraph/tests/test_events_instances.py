"""``GET /me/events/{id}/instances?startDateTime&endDateTime``: a series' instances in a window."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from msgraph_emulator.mailbox.ids import new_id

DAILY = {
    "subject": "Daily",
    "start": {"dateTime": "2024-05-01T09:00:00", "timeZone": "UTC"},
    "end": {"dateTime": "2024-05-01T09:15:00", "timeZone": "UTC"},
    "recurrence": {
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "noEnd", "startDate": "2024-05-01"},
    },
}
WEEK = "startDateTime=2024-06-03T00:00:00Z&endDateTime=2024-06-10T00:00:00Z"


def _at(day: int, hour: int) -> dict[str, Any]:
    return {
        "start": {"dateTime": f"2024-06-{day:02d}T{hour:02d}:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"2024-06-{day:02d}T{hour:02d}:30:00", "timeZone": "UTC"},
    }


async def test_occurrences_and_exceptions_without_cancelled(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    master = await g.post("/v1.0/me/events", DAILY)
    url = f"/v1.0/me/events/{master['id']}/instances?{WEEK}"
    first = (await g.get(url))["value"]
    assert [i["start"]["dateTime"][:10] for i in first] == [
        f"2024-06-{d:02d}" for d in range(3, 10)
    ]
    assert {i["type"] for i in first} == {"occurrence"}
    assert {i["seriesMasterId"] for i in first} == {master["id"]}
    # Cancel the 4th, move the 5th to the afternoon, move the 6th out of the window.
    status, _, _ = await g.call("DELETE", f"/v1.0/me/events/{first[1]['id']}")
    assert status == 204
    await g.call("PATCH", f"/v1.0/me/events/{first[2]['id']}", _at(5, 16) | {"subject": "Late"})
    await g.call("PATCH", f"/v1.0/me/events/{first[3]['id']}", _at(20, 9))
    # ... and move an occurrence from outside the window into it.
    day12 = "startDateTime=2024-06-12T00:00:00Z&endDateTime=2024-06-13T00:00:00Z"
    (twelfth,) = (await g.get(f"/v1.0/me/events/{master['id']}/instances?{day12}"))["value"]
    await g.call("PATCH", f"/v1.0/me/events/{twelfth['id']}", _at(9, 18))
    body = await g.get(url)
    quoted = quote(master["id"], safe="")
    assert body["@odata.context"].endswith(f"/events('{quoted}')/instances")
    got = [(i["type"], i["start"]["dateTime"][:13], i["subject"]) for i in body["value"]]
    assert got == [
        ("occurrence", "2024-06-03T09", "Daily"),
        ("exception", "2024-06-05T16", "Late"),
        ("occurrence", "2024-06-07T09", "Daily"),
        ("occurrence", "2024-06-08T09", "Daily"),
        ("occurrence", "2024-06-09T09", "Daily"),
        ("exception", "2024-06-09T18", "Daily"),
    ]
    assert first[1]["id"] not in {i["id"] for i in body["value"]}


async def test_window_required_paging_and_non_masters(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    master = await g.post("/v1.0/me/events", DAILY)
    base = f"/v1.0/me/events/{master['id']}/instances"
    for query in ("", "?startDateTime=2024-06-03T00:00:00Z"):
        status, err, _ = await g.call("GET", base + query)
        assert status == 400 and err["error"]["code"] == "ErrorInvalidParameter"
    status, page, _ = await g.call("GET", f"{base}?{WEEK}&$top=4")
    assert status == 200 and len(page["value"]) == 4 and "$skip=4" in page["@odata.nextLink"]
    rest = await g.get(page["@odata.nextLink"])
    assert len(rest["value"]) == 3 and "@odata.nextLink" not in rest
    single = await g.post("/v1.0/me/events", {"subject": "once"} | _at(4, 12))
    assert (await g.get(f"/v1.0/me/events/{single['id']}/instances?{WEEK}"))["value"] == []
    occurrence = page["value"][0]["id"]
    assert (await g.get(f"/v1.0/me/events/{occurrence}/instances?{WEEK}"))["value"] == []
    status, err, _ = await g.call("GET", f"/v1.0/me/events/{new_id()}/instances?{WEEK}")
    assert status == 404 and err["error"]["code"] == "ErrorItemNotFound"
