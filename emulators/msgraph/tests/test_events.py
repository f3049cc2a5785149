"""Events: create / read / update / delete, transactionId, extended properties, time zones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from msgraph_emulator.changes import Change
from msgraph_emulator.state import EmulatorState

LUNCH = {
    "subject": "Let's go for lunch",
    "body": {"contentType": "HTML", "content": "<p>Does <b>noon</b> work?</p>"},
    "start": {"dateTime": "2017-04-15T12:00:00", "timeZone": "Pacific Standard Time"},
    "end": {"dateTime": "2017-04-15T14:00:00", "timeZone": "Pacific Standard Time"},
    "location": {"displayName": "Harry's Bar"},
    "attendees": [
        {
            "emailAddress": {"address": "samanthab@contoso.com", "name": "Samantha"},
            "type": "required",
        }
    ],
}


async def test_create_returns_201_with_graph_fields(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    ev = await g.post("/v1.0/me/events", LUNCH)
    assert ev["@odata.context"].endswith(f"users('{g.user.id}')/events/$entity")
    assert ev["type"] == "singleInstance" and ev["seriesMasterId"] is None
    assert ev["start"] == {"dateTime": "2017-04-15T19:00:00.0000000", "timeZone": "UTC"}
    assert ev["end"] == {"dateTime": "2017-04-15T21:00:00.0000000", "timeZone": "UTC"}
    assert ev["originalStartTimeZone"] == "Pacific Standard Time"
    assert ev["originalEndTimeZone"] == "Pacific Standard Time"
    assert ev["body"]["contentType"] == "html" and ev["bodyPreview"] == "Does noon work?"
    assert ev["location"]["displayName"] == "Harry's Bar"
    assert ev["attendees"][0]["status"] == {"response": "none", "time": "0001-01-01T00:00:00Z"}
    assert ev["organizer"]["emailAddress"]["address"] == g.user.user_principal_name
    assert ev["@odata.etag"] == f'W/"{ev["changeKey"]}"'
    assert ev["showAs"] == "busy" and ev["isAllDay"] is False and ev["isCancelled"] is False
    assert ev["responseStatus"]["response"] == "organizer"
    assert "transactionId" not in ev and "singleValueExtendedProperties" not in ev
    assert ev["createdDateTime"].endswith("Z") and len(ev["createdDateTime"]) == 28
    assert ev["iCalUId"].startswith("040000008200E00074C5B7101A82E008")
    got = await g.get(f"/v1.0/me/events/{ev['id']}")
    assert {k: v for k, v in got.items() if k != "@odata.context"} == {
        k: v for k, v in ev.items() if k != "@odata.context"
    }


async def test_prefer_outlook_timezone_windows_and_iana(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    ev = await g.post("/v1.0/me/calendar/events", LUNCH)
    for zone in ("Pacific Standard Time", "America/Los_Angeles"):
        status, got, headers = await g.call(
            "GET", f"/v1.0/me/events/{ev['id']}", headers={"Prefer": f'outlook.timezone="{zone}"'}
        )
        assert status == 200
        assert got["start"] == {"dateTime": "2017-04-15T12:00:00.0000000", "timeZone": zone}
        assert headers["Preference-Applied"] == f'outlook.timezone="{zone}"'


async def test_all_day_is_midnight_utc_labelled_whatever_prefer(
    graph_as: Callable[..., Any],
) -> None:
    g = graph_as()
    body = {
        "subject": "Offsite",
        "isAllDay": True,
        "start": {"dateTime": "2024-03-10T00:00:00", "timeZone": "Pacific Standard Time"},
        "end": {"dateTime": "2024-03-11T00:00:00", "timeZone": "Pacific Standard Time"},
    }
    ev = await g.post("/v1.0/me/events", body)
    status, got, _ = await g.call(
        "GET",
        f"/v1.0/me/events/{ev['id']}",
        headers={"Prefer": 'outlook.timezone="Tokyo Standard Time"'},
    )
    assert status == 200
    assert got["start"] == {"dateTime": "2024-03-10T00:00:00.0000000", "timeZone": "UTC"}
    assert got["end"] == {"dateTime": "2024-03-11T00:00:00.0000000", "timeZone": "UTC"}
    bad = body | {"end": {"dateTime": "2024-03-10T12:00:00", "timeZone": "Pacific Standard Time"}}
    status, err, _ = await g.call("POST", "/v1.0/me/events", bad)
    assert status == 400 and err["error"]["code"] == "ErrorInvalidRequest"
    mixed = body | {"end": {"dateTime": "2024-03-11T00:00:00", "timeZone": "UTC"}}
    status, err, _ = await g.call("POST", "/v1.0/me/events", mixed)
    assert status == 400 and err["error"]["code"] == "ErrorInvalidRequest"


async def test_invalid_bodies_are_refused_like_graph(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    cases = [
        (LUNCH | {"showAs": "maybe"}, "RequestBodyRead"),
        (LUNCH | {"colour": "red"}, "RequestBodyRead"),
        (
            LUNCH | {"start": {"dateTime": "2017-04-15T12:00:00", "timeZone": "Mars/Base"}},
            "TimeZoneNotSupportedException",
        ),
        (
            LUNCH
            | {"end": {"dateTime": "2017-04-15T10:00:00", "timeZone": "Pacific Standard Time"}},
            "ErrorInvalidRequest",
        ),
        ({"subject": "no times"}, "ErrorInvalidRequest"),
    ]
    for body, code in cases:
        status, err, _ = await g.call("POST", "/v1.0/me/events", body)
        assert (status, err["error"]["code"]) == (400, code), body
    assert (await g.get("/v1.0/me/events"))["value"] == []


async def test_calendars_read_cannot_write(graph_as: Callable[..., Any]) -> None:
    g = graph_as(scopes=["Calendars.Read"])
    status, err, _ = await g.call("POST", "/v1.0/me/events", LUNCH)
    assert status == 403 and err["error"]["code"] == "ErrorAccessDenied"


async def test_transaction_id_replay_returns_original(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    body = LUNCH | {"transactionId": "7E163156-7762-4BEB-A1C6-729EA81755A7"}
    first = await g.post("/v1.0/me/events", body)
    again = await g.post("/v1.0/me/events", body | {"subject": "changed on retry"})
    assert again["id"] == first["id"] and again["subject"] == LUNCH["subject"]
    assert first["transactionId"] == body["transactionId"]
    assert len((await g.get("/v1.0/me/events"))["value"]) == 1
    other = graph_as()  # scoped to the mailbox
    assert (await other.post("/v1.0/me/events", body))["id"] != first["id"]
    status, _, _ = await g.call("DELETE", f"/v1.0/me/events/{first['id']}")
    assert status == 204
    assert (await g.post("/v1.0/me/events", body))["id"] != first["id"]


async def test_extended_property_only_with_expand(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    pid = "String {66f5a359-4659-4830-9070-00040ec6ac6e} Name CalsyncId"
    body = LUNCH | {"singleValueExtendedProperties": [{"id": pid, "value": "booking-42"}]}
    ev = await g.post("/v1.0/me/events", body)
    assert "singleValueExtendedProperties" not in ev
    plain = await g.get(f"/v1.0/me/events/{ev['id']}")
    assert "singleValueExtendedProperties" not in plain
    path = (
        f"/v1.0/me/events/{ev['id']}?$expand=singleValueExtendedProperties($filter=id eq '{pid}')"
    )
    got = await g.get(path)
    assert got["singleValueExtendedProperties"] == [{"id": pid, "value": "booking-42"}]
    other = path.replace("CalsyncId", "Other")
    assert (await g.get(other))["singleValueExtendedProperties"] == []


async def test_patch_changes_change_key_and_delete(
    graph_as: Callable[..., Any], state: EmulatorState
) -> None:
    seen: list[Change] = []
    state.changes.subscribe(seen.append)
    g = graph_as()
    ev = await g.post("/v1.0/me/events", LUNCH)
    status, patched, _ = await g.call(
        "PATCH", f"/v1.0/me/events/{ev['id']}", {"subject": "Dinner", "showAs": "tentative"}
    )
    assert status == 200 and patched["subject"] == "Dinner" and patched["showAs"] == "tentative"
    assert patched["changeKey"] != ev["changeKey"] and patched["@odata.etag"] != ev["@odata.etag"]
    assert patched["lastModifiedDateTime"] >= ev["lastModifiedDateTime"]
    assert patched["start"] == ev["start"]
    status, _, _ = await g.call("DELETE", f"/v1.0/me/events/{ev['id']}")
    assert status == 204
    status, err, _ = await g.call("GET", f"/v1.0/me/events/{ev['id']}")
    assert status == 404 and err["error"]["code"] == "ErrorItemNotFound"
    cal = (await g.get("/v1.0/me/calendar"))["id"]
    assert [(c.change_type, c.event_id, c.calendar_id, c.user_id) for c in seen] == [
        ("created", ev["id"], cal, g.user.id),
        ("updated", ev["id"], cal, g.user.id),
        ("deleted", ev["id"], cal, g.user.id),
    ]
    assert all(c.tenant_id == g.user.tenant_id for c in seen)


async def test_calendar_scoped_routes(graph_as: Callable[..., Any], client: Any) -> None:
    g = graph_as()
    resp = await client.post(f"/_emulator/users/{g.user.id}/calendars", json={"name": "Work"})
    work = (await resp.json())["id"]
    ev = await g.post(f"/v1.0/me/calendars/{work}/events", LUNCH)
    assert (await g.get(f"/v1.0/me/calendars/{work}/events/{ev['id']}"))["id"] == ev["id"]
    assert (await g.get(f"/v1.0/me/events/{ev['id']}"))["id"] == ev["id"]
    default = (await g.get("/v1.0/me/calendar"))["id"]
    status, _, _ = await g.call("GET", f"/v1.0/me/calendars/{default}/events/{ev['id']}")
    assert status == 404
    assert (await g.get("/v1.0/me/events"))["value"] == []  # /me/events = default calendar
    listed = await g.get(f"/v1.0/me/calendars/{work}/events")
    assert [e["id"] for e in listed["value"]] == [ev["id"]]


async def test_event_list_pages(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    for i in range(12):
        await g.post("/v1.0/me/events", LUNCH | {"subject": f"e{i}"})
    first = await g.get("/v1.0/me/events")
    assert len(first["value"]) == 10 and "$skip=10" in first["@odata.nextLink"]
    rest = await g.get(first["@odata.nextLink"])
    assert len(rest["value"]) == 2 and "@odata.nextLink" not in rest
    status, small, headers = await g.call(
        "GET", "/v1.0/me/events", headers={"Prefer": "odata.maxpagesize=5"}
    )
    assert status == 200 and len(small["value"]) == 5
    assert headers["Preference-Applied"] == "odata.maxpagesize=5"
    selected = await g.get("/v1.0/me/events?$select=subject,showAs")
    assert set(selected["value"][0]) == {"@odata.etag", "id", "subject", "showAs"}
