"""The ``cancelledOccurrencesInDelta`` switch (``/_emulator/behaviour``): a cancelled occurrence
arrives in the next delta round as ``@removed`` (default) or not at all ("omitted", as field
reports describe real Graph doing), while calendarView and fresh rounds never list it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

WINDOW = "startDateTime=2024-06-01T00:00:00Z&endDateTime=2024-07-01T00:00:00Z"
DELTA = f"/v1.0/me/calendarView/delta?{WINDOW}"
VIEW = f"/v1.0/me/calendarView?{WINDOW}"
BEHAVIOUR = "/_emulator/behaviour"
SERIES = {
    "subject": "weekly",
    "start": {"dateTime": "2024-06-03T09:00:00", "timeZone": "UTC"},
    "end": {"dateTime": "2024-06-03T10:00:00", "timeZone": "UTC"},
    "recurrence": {
        "pattern": {"type": "weekly", "daysOfWeek": ["monday"]},
        "range": {"type": "endDate", "startDate": "2024-06-03", "endDate": "2024-06-24"},
    },
}


async def _round(g: Any, url: str) -> tuple[list[dict[str, Any]], str, int]:
    """Follow one delta round: ``(items, deltaLink, pages)``."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        status, body, _ = await g.call("GET", url, headers={"Prefer": "odata.maxpagesize=2"})
        assert status == 200, body
        pages += 1
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]


async def _behaviour(client: Any) -> dict[str, Any]:
    resp = await client.get(BEHAVIOUR)
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def _set(client: Any, value: str) -> None:
    resp = await client.put(BEHAVIOUR, json={"cancelledOccurrencesInDelta": value})
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"cancelledOccurrencesInDelta": value}


async def _cancel(g: Any, client: Any, occurrence_id: str, via: str) -> None:
    if via == "graph":
        status, body, _ = await g.call("DELETE", f"/v1.0/me/events/{occurrence_id}")
        assert status == 204, body
    else:
        resp = await client.delete(f"/_emulator/users/{g.user.id}/events/{occurrence_id}")
        assert resp.status == 204, await resp.text()


async def _series_synced(g: Any) -> tuple[list[dict[str, Any]], str]:
    await g.post("/v1.0/me/events", SERIES)
    items, link, _ = await _round(g, DELTA)
    assert len(items) == 4
    return items, link


@pytest.mark.parametrize("via", ["graph", "control"])
async def test_default_reports_a_cancelled_occurrence_as_removed(
    graph_as: Callable[..., Any], client: Any, via: str
) -> None:
    assert await _behaviour(client) == {"cancelledOccurrencesInDelta": "removed"}
    g = graph_as()
    items, link = await _series_synced(g)
    gone = items[1]["id"]
    await _cancel(g, client, gone, via)
    changed, _, _ = await _round(g, link)
    assert [i["id"] for i in changed if "@removed" in i] == [gone]
    assert changed[0] == {
        "@odata.type": "#microsoft.graph.event",
        "id": gone,
        "@removed": {"reason": "deleted"},
    }


@pytest.mark.parametrize("via", ["graph", "control"])
async def test_omitted_sends_nothing_for_a_cancelled_occurrence(
    graph_as: Callable[..., Any], client: Any, via: str
) -> None:
    await _set(client, "omitted")
    g = graph_as()
    items, link = await _series_synced(g)
    gone = items[1]["id"]
    await _cancel(g, client, gone, via)

    changed, link, _ = await _round(g, link)
    assert gone not in {i["id"] for i in changed}
    assert not any("@removed" in i for i in changed)
    # The rest of the series is still reported as it is now (the master changed).
    assert [i["id"] for i in changed] == [i["id"] for i in items if i["id"] != gone]

    # Yet the occurrence is gone: a fresh round and calendarView leave it out.
    fresh, _, _ = await _round(g, DELTA)
    assert [i["id"] for i in fresh] == [i["id"] for i in items if i["id"] != gone]
    view = await g.get(VIEW)
    assert gone not in {i["id"] for i in view["value"]}
    assert len(view["value"]) == 3

    # Only cancellations are omitted: other changes still arrive, removals too.
    again, _, _ = await _round(g, link)
    assert again == []
    status, body, _ = await g.call("DELETE", f"/v1.0/me/events/{items[0]['seriesMasterId']}")
    assert status == 204, body
    after, _, _ = await _round(g, link)
    assert sorted(i["id"] for i in after if "@removed" in i) == sorted(
        i["id"] for i in items if i["id"] != gone
    )


async def test_reset_restores_the_default_and_state_carries_the_switch(client: Any) -> None:
    await _set(client, "omitted")
    dumped = await (await client.get("/_emulator/state")).json()
    assert dumped["behaviour"] == {"cancelledOccurrencesInDelta": "omitted"}

    resp = await client.post("/_emulator/reset", json={"seed": False})
    assert resp.status == 200
    assert await _behaviour(client) == {"cancelledOccurrencesInDelta": "removed"}

    resp = await client.post("/_emulator/state", json=dumped)
    assert resp.status == 200
    assert "behaviour" in (await resp.json())["loaded"]
    assert await _behaviour(client) == {"cancelledOccurrencesInDelta": "omitted"}

    # PUT replaces: an omitted field takes its default.
    resp = await client.put(BEHAVIOUR, json={})
    assert await resp.json() == {"cancelledOccurrencesInDelta": "removed"}


@pytest.mark.parametrize(
    "body",
    [{"cancelledOccurrencesInDelta": "sometimes"}, {"cancelled": "omitted"}, ["omitted"], None],
)
async def test_bad_behaviour_is_400_and_changes_nothing(client: Any, body: Any) -> None:
    await _set(client, "omitted")
    if body is None:
        resp = await client.put(BEHAVIOUR, data=b"not json")
    else:
        resp = await client.put(BEHAVIOUR, json=body)
    assert resp.status == 400
    assert set(await resp.json()) == {"error"}
    assert await _behaviour(client) == {"cancelledOccurrencesInDelta": "omitted"}
