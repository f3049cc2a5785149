"""calendarView/delta: rounds, paging, @removed, occurrences, token expiry (410)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WINDOW = "startDateTime=2024-06-01T00:00:00Z&endDateTime=2024-07-01T00:00:00Z"
DELTA = f"/v1.0/me/calendarView/delta?{WINDOW}"
OCCURRENCE_KEYS = {"@odata.type", "@odata.etag", "seriesMasterId", "type", "id", "start", "end"}


def _event(day: int, subject: str = "e") -> dict[str, Any]:
    return {
        "subject": subject,
        "start": {"dateTime": f"2024-06-{day:02d}T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"2024-06-{day:02d}T10:00:00", "timeZone": "UTC"},
    }


async def _round(g: Any, url: str, page_size: int = 100) -> tuple[list[dict[str, Any]], str, int]:
    """Follow one delta round: ``(items, deltaLink, pages)``."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        status, body, _ = await g.call(
            "GET", url, headers={"Prefer": f"odata.maxpagesize={page_size}"}
        )
        assert status == 200, body
        pages += 1
        items += body["value"]
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]
        assert "$skiptoken=" in url


async def test_first_round_pages_then_empty_round(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    ids = [(await g.post("/v1.0/me/events", _event(d, f"d{d}")))["id"] for d in range(1, 6)]
    items, delta_link, pages = await _round(g, DELTA, page_size=2)
    assert pages == 3 and [i["id"] for i in items] == ids
    assert "$deltatoken=" in delta_link
    assert all(i["@odata.type"] == "#microsoft.graph.event" for i in items)
    assert items[0]["subject"] == "d1" and "transactionId" not in items[0]
    again, next_link, _ = await _round(g, delta_link)
    assert again == [] and "$deltatoken=" in next_link


async def test_changes_since_token(graph_as: Callable[..., Any], client: Any) -> None:
    g = graph_as()
    keep = await g.post("/v1.0/me/events", _event(1, "keep"))
    edit = await g.post("/v1.0/me/events", _event(2, "edit"))
    gone = await g.post("/v1.0/me/events", _event(3, "gone"))
    away = await g.post("/v1.0/me/events", _event(4, "away"))
    _, link, _ = await _round(g, DELTA)
    new = await g.post("/v1.0/me/events", _event(5, "new"))
    await g.call("PATCH", f"/v1.0/me/events/{edit['id']}", {"subject": "edited"})
    await g.call("DELETE", f"/v1.0/me/events/{gone['id']}")
    out_of_window = {"start": {"dateTime": "2024-08-01T09:00:00", "timeZone": "UTC"}}
    out_of_window["end"] = {"dateTime": "2024-08-01T10:00:00", "timeZone": "UTC"}
    await g.call("PATCH", f"/v1.0/me/events/{away['id']}", out_of_window)
    # "as the user in Outlook": a change through the control API shows up the same way.
    resp = await client.post(
        f"/_emulator/users/{g.user.id}/calendars/default/events", json=_event(6, "outlook")
    )
    outlook = await resp.json()
    items, link, _ = await _round(g, link)
    by_id = {i["id"]: i for i in items}
    assert keep["id"] not in by_id
    assert by_id[new["id"]]["subject"] == "new"
    assert by_id[edit["id"]]["subject"] == "edited"
    assert by_id[outlook["id"]]["subject"] == "outlook"
    removed = {"@odata.type": "#microsoft.graph.event", "@removed": {"reason": "deleted"}}
    assert by_id[gone["id"]] == removed | {"id": gone["id"]}
    assert by_id[away["id"]] == removed | {"id": away["id"]}
    assert (await _round(g, link))[0] == []


async def test_other_calendars_are_not_in_the_round(
    graph_as: Callable[..., Any], client: Any
) -> None:
    g = graph_as()
    resp = await client.post(f"/_emulator/users/{g.user.id}/calendars", json={"name": "Other"})
    other = (await resp.json())["id"]
    _, default_link, _ = await _round(g, DELTA)
    _, other_link, _ = await _round(g, f"/v1.0/me/calendars/{other}/calendarView/delta?{WINDOW}")
    ev = await g.post(f"/v1.0/me/calendars/{other}/events", _event(2))
    assert (await _round(g, default_link))[0] == []
    assert [i["id"] for i in (await _round(g, other_link))[0]] == [ev["id"]]


async def test_series_occurrences_are_minimal_and_cancellation_is_removed(
    graph_as: Callable[..., Any],
) -> None:
    g = graph_as()
    series = _event(3, "weekly") | {
        "recurrence": {
            "pattern": {"type": "weekly", "daysOfWeek": ["monday"]},
            "range": {"type": "endDate", "startDate": "2024-06-03", "endDate": "2024-06-24"},
        }
    }
    master = await g.post("/v1.0/me/events", series)
    items, link, _ = await _round(g, DELTA)
    assert len(items) == 4
    assert all(set(i) == OCCURRENCE_KEYS for i in items)
    assert {i["seriesMasterId"] for i in items} == {master["id"]}
    assert items[0]["start"] == {"dateTime": "2024-06-03T09:00:00.0000000", "timeZone": "UTC"}
    await g.call("DELETE", f"/v1.0/me/events/{items[1]['id']}")
    await g.call("PATCH", f"/v1.0/me/events/{items[2]['id']}", {"subject": "special"})
    changed, _, _ = await _round(g, link)
    removed = [i["id"] for i in changed if "@removed" in i]
    assert removed == [items[1]["id"]]
    exception = next(i for i in changed if i.get("type") == "exception")
    assert exception["id"] == items[2]["id"] and exception["subject"] == "special"
    assert exception["seriesMasterId"] == master["id"]


async def test_delta_refuses_query_options(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    for option in (
        "$select=subject",
        "$expand=attachments",
        "$filter=showAs eq 'busy'",
        "$orderby=start/dateTime",
    ):
        status, err, _ = await g.call("GET", f"{DELTA}&{option}")
        assert status == 400 and err["error"]["code"] == "BadRequest", option
    status, err, _ = await g.call("GET", "/v1.0/me/calendarView/delta")
    assert status == 400 and err["error"]["code"] == "ErrorInvalidParameter"


async def test_expired_token_is_410_with_fresh_start_location(
    graph_as: Callable[..., Any], client: Any
) -> None:
    g = graph_as()
    ev = await g.post("/v1.0/me/events", _event(1))
    _, link, _ = await _round(g, DELTA)
    status, _, _ = await g.call("GET", DELTA, headers={"Prefer": "odata.maxpagesize=1"})
    assert status == 200
    resp = await client.post(f"/_emulator/users/{g.user.id}/delta/expire", json={})
    assert resp.status == 200 and (await resp.json())["expired"] == 2
    status, err, headers = await g.call("GET", link)
    assert status == 410 and err["error"]["code"] == "syncStateNotFound"
    location = headers["Location"]
    assert "startDateTime=2024-06-01T00:00:00Z" in location and location.endswith("$deltatoken=")
    items, fresh, _ = await _round(g, location)
    assert [i["id"] for i in items] == [ev["id"]]
    assert (await _round(g, fresh))[0] == []


async def test_tokens_are_per_user_and_garbage_is_rejected(graph_as: Callable[..., Any]) -> None:
    alice, bob = graph_as(), graph_as()
    _, link, _ = await _round(alice, DELTA)
    status, err, _ = await bob.call("GET", link)
    assert status == 410 and err["error"]["code"] == "syncStateNotFound"
    status, err, _ = await alice.call("GET", "/v1.0/me/calendarView/delta?$deltatoken=%21%21")
    assert status == 400


async def _pages(g: Any, url: str, page_size: int) -> tuple[list[list[dict[str, Any]]], str]:
    pages: list[list[dict[str, Any]]] = []
    while True:
        headers = {"Prefer": f"odata.maxpagesize={page_size}"}
        status, body, _ = await g.call("GET", url, headers=headers)
        assert status == 200, body
        pages.append(body["value"])
        if "@odata.deltaLink" in body:
            return pages, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


def _series(subject: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "subject": subject,
        "start": {"dateTime": "2024-06-01T11:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2024-06-01T11:30:00", "timeZone": "UTC"},
        "recurrence": {
            "pattern": {"type": kind, **extra},
            "range": {"type": "endDate", "startDate": "2024-06-01", "endDate": "2024-06-10"},
        },
    }


async def test_a_series_is_never_split_across_pages(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    singles = [await g.post("/v1.0/me/events", _event(d, f"s{d}")) for d in (1, 2, 30)]
    daily = await g.post("/v1.0/me/events", _series("daily", "daily"))
    weekly = await g.post(
        "/v1.0/me/events", _series("weekly", "weekly", daysOfWeek=["monday", "wednesday"])
    )
    pages, link = await _pages(g, DELTA, page_size=3)
    where: dict[str, set[int]] = {}
    for n, page in enumerate(pages):
        for item in page:
            where.setdefault(item.get("seriesMasterId") or item["id"], set()).add(n)
    assert all(len(found) == 1 for found in where.values()), where
    # Page size 3: [s1, daily x10], [s2, weekly x3 (Jun 3, 5, 10)], [s30].
    assert [len(p) for p in pages] == [11, 4, 1]
    assert [p[0]["id"] for p in pages] == [s["id"] for s in singles]
    assert {i["seriesMasterId"] for i in pages[0][1:]} == {daily["id"]}
    assert {i["seriesMasterId"] for i in pages[1][1:]} == {weekly["id"]}
    # In a later round, a changed series also comes whole on one page.
    await g.call("PATCH", f"/v1.0/me/events/{daily['id']}", {"subject": "daily (renamed)"})
    await g.call("PATCH", f"/v1.0/me/events/{singles[2]['id']}", {"subject": "s30 (renamed)"})
    changed, _ = await _pages(g, link, page_size=2)
    assert [len(p) for p in changed] == [10, 1]
    assert {i["seriesMasterId"] for i in changed[0]} == {daily["id"]}
