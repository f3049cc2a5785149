"""Control API: Outlook-side edits, ground-truth busy intervals, dump/load/reset of mailboxes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from msgraph_emulator.changes import Change
from msgraph_emulator.state import EmulatorState


def _event(
    start: str, end: str, show_as: str = "busy", zone: str = "UTC", **extra: Any
) -> dict[str, Any]:
    return {
        "subject": show_as,
        "showAs": show_as,
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
        **extra,
    }


async def test_ground_truth_busy_intervals(graph_as: Callable[..., Any], client: Any) -> None:
    g = graph_as()
    base = f"/_emulator/users/{g.user.id}/calendars/default"
    for body in (
        _event("2024-06-03T09:00:00", "2024-06-03T10:00:00", "busy"),
        _event("2024-06-03T09:30:00", "2024-06-03T11:00:00", "oof"),
        _event("2024-06-03T12:00:00", "2024-06-03T13:00:00", "tentative"),
        _event("2024-06-03T14:00:00", "2024-06-03T15:00:00", "free"),
        _event("2024-06-03T16:00:00", "2024-06-03T17:00:00", "workingElsewhere"),
        _event("2024-06-03T18:00:00", "2024-06-03T19:00:00", "busy", isCancelled=True),
        _event(
            "2024-06-04T00:00:00",
            "2024-06-05T00:00:00",
            "busy",
            zone="Pacific Standard Time",
            isAllDay=True,
        ),
    ):
        resp = await client.post(f"{base}/events", json=body)
        assert resp.status == 201, await resp.text()
    resp = await client.get(f"{base}/busy?start=2024-06-03T00:00:00Z&end=2024-06-06T00:00:00Z")
    truth = await resp.json()
    assert truth["blocking"] == [
        {"start": "2024-06-03T09:00:00Z", "end": "2024-06-03T11:00:00Z"},
        {"start": "2024-06-03T16:00:00Z", "end": "2024-06-03T17:00:00Z"},
        {"start": "2024-06-04T07:00:00Z", "end": "2024-06-05T07:00:00Z"},
    ]
    assert truth["busy"] == [
        {"start": "2024-06-03T09:00:00Z", "end": "2024-06-03T10:00:00Z"},
        {"start": "2024-06-04T07:00:00Z", "end": "2024-06-05T07:00:00Z"},
    ]
    assert truth["tentative"] == [{"start": "2024-06-03T12:00:00Z", "end": "2024-06-03T13:00:00Z"}]
    assert len(truth["instances"]) == 7
    assert [i["showAs"] for i in truth["instances"] if i["isCancelled"]] == ["busy"]


async def test_ground_truth_follows_series_exceptions_and_cancels(
    graph_as: Callable[..., Any], client: Any
) -> None:
    g = graph_as()
    series = _event("2024-06-03T09:00:00", "2024-06-03T10:00:00") | {
        "recurrence": {
            "pattern": {"type": "daily"},
            "range": {"type": "numbered", "startDate": "2024-06-03", "numberOfOccurrences": 3},
        }
    }
    master = await g.post("/v1.0/me/events", series)
    view = await g.get(
        "/v1.0/me/calendarView?startDateTime=2024-06-01T00:00:00Z&endDateTime=2024-06-10T00:00:00Z"
    )
    first, second, _ = view["value"]
    resp = await client.delete(f"/_emulator/users/{g.user.id}/events/{first['id']}")
    assert resp.status == 204
    resp = await client.patch(
        f"/_emulator/users/{g.user.id}/events/{second['id']}", json={"showAs": "free"}
    )
    assert resp.status == 200 and (await resp.json())["type"] == "exception"
    resp = await client.get(
        f"/_emulator/users/{g.user.id}/calendars/default/busy"
        "?start=2024-06-01T00:00:00Z&end=2024-06-10T00:00:00Z"
    )
    truth = await resp.json()
    assert truth["blocking"] == [{"start": "2024-06-05T09:00:00Z", "end": "2024-06-05T10:00:00Z"}]
    assert {i["seriesMasterId"] for i in truth["instances"]} == {master["id"]}


async def test_control_edits_emit_changes_for_the_master(
    graph_as: Callable[..., Any], client: Any, state: EmulatorState
) -> None:
    seen: list[Change] = []
    state.changes.subscribe(seen.append)
    g = graph_as()
    series = _event("2024-06-03T09:00:00", "2024-06-03T10:00:00") | {
        "recurrence": {
            "pattern": {"type": "daily"},
            "range": {"type": "numbered", "startDate": "2024-06-03", "numberOfOccurrences": 2},
        }
    }
    resp = await client.post(f"/_emulator/users/{g.user.id}/calendars/default/events", json=series)
    master = await resp.json()
    view = await g.get(
        "/v1.0/me/calendarView?startDateTime=2024-06-01T00:00:00Z&endDateTime=2024-06-10T00:00:00Z"
    )
    await client.delete(f"/_emulator/users/{g.user.id}/events/{view['value'][0]['id']}")
    assert [(c.change_type, c.event_id) for c in seen] == [
        ("created", master["id"]),
        ("updated", master["id"]),
    ]


async def test_read_only_shared_calendar_is_written_by_its_owner(
    graph_as: Callable[..., Any], client: Any
) -> None:
    g = graph_as()
    resp = await client.post(
        f"/_emulator/users/{g.user.id}/calendars",
        json={
            "name": "Boss",
            "access": "read",
            "owner": {"name": "Boss", "address": "b@x.example"},
        },
    )
    cid = (await resp.json())["id"]
    resp = await client.post(
        f"/_emulator/users/{g.user.id}/calendars/{cid}/events",
        json=_event("2024-06-03T09:00:00", "2024-06-03T10:00:00", isOrganizer=False),
    )
    assert resp.status == 201
    ev = await resp.json()
    assert ev["isOrganizer"] is False
    status, err, _ = await g.call("PATCH", f"/v1.0/me/events/{ev['id']}", {"subject": "mine"})
    assert status == 403 and err["error"]["code"] == "ErrorAccessDenied"
    got = await g.get(f"/v1.0/me/calendars/{cid}/events/{ev['id']}")
    assert got["subject"] == "busy"


async def test_dump_load_round_trip_and_seed_format(
    graph_as: Callable[..., Any], state: EmulatorState
) -> None:
    g = graph_as()
    series = _event("2024-06-03T09:00:00", "2024-06-03T10:00:00", transactionId="tx-1") | {
        "recurrence": {
            "pattern": {"type": "daily"},
            "range": {"type": "numbered", "startDate": "2024-06-03", "numberOfOccurrences": 3},
        }
    }
    master = await g.post("/v1.0/me/events", series)
    view_path = (
        "/v1.0/me/calendarView?startDateTime=2024-06-01T00:00:00Z&endDateTime=2024-06-10T00:00:00Z"
    )
    view = (await g.get(view_path))["value"]
    await g.call("PATCH", f"/v1.0/me/events/{view[0]['id']}", {"subject": "moved"})
    await g.call("DELETE", f"/v1.0/me/events/{view[1]['id']}")
    before = (await g.get(view_path))["value"]
    dumped = json.loads(json.dumps(state.mailboxes.dump()))
    state.mailboxes.reset()
    assert state.mailboxes.get(g.user.id) is None
    state.mailboxes.load(dumped)
    after = (await g.get(view_path))["value"]
    assert after == before
    assert (await g.get(f"/v1.0/me/events/{master['id']}"))["transactionId"] == "tx-1"
    # A hand-written seed: Graph event JSON, ids optional.
    other = graph_as()
    state.mailboxes.load(
        {
            other.user.id: {
                "calendars": [
                    {
                        "name": "Calendar",
                        "isDefaultCalendar": True,
                        "owner": {"name": "O", "address": "o@x.example"},
                        "events": [_event("2024-06-03T09:00:00", "2024-06-03T10:00:00")],
                    }
                ]
            }
        }
    )
    seeded = (await other.get(view_path))["value"]
    assert [e["subject"] for e in seeded] == ["busy"]
    assert len((await other.get("/v1.0/me/calendars"))["value"]) == 1
