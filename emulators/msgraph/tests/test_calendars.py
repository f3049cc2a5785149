"""/me/calendars, /me/calendar, /me/mailboxSettings, shared calendars via the control API."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

CALENDAR_KEYS = {
    "id",
    "name",
    "color",
    "hexColor",
    "isDefaultCalendar",
    "changeKey",
    "canShare",
    "canViewPrivateItems",
    "canEdit",
    "allowedOnlineMeetingProviders",
    "defaultOnlineMeetingProvider",
    "isTallyingResponses",
    "isRemovable",
    "owner",
}


async def test_every_mailbox_has_a_default_calendar(graph_as: Callable[..., Any]) -> None:
    g = graph_as(name="Megan Bowen")
    data = await g.get("/v1.0/me/calendars")
    assert data["@odata.context"].endswith(f"/v1.0/$metadata#users('{g.user.id}')/calendars")
    (cal,) = data["value"]
    assert set(cal) == CALENDAR_KEYS
    assert cal["name"] == "Calendar"
    assert cal["isDefaultCalendar"] is True and cal["canEdit"] is True and cal["canShare"] is True
    assert cal["isRemovable"] is False
    assert cal["owner"] == {"name": "Megan Bowen", "address": g.user.user_principal_name}
    assert cal["allowedOnlineMeetingProviders"] == ["teamsForBusiness"]
    assert len(cal["id"]) > 40 and re.fullmatch(r"[A-Za-z0-9_\-=]+", cal["id"])
    default = await g.get("/v1.0/me/calendar")
    assert default["id"] == cal["id"]
    assert default["@odata.context"].endswith("/calendar/$entity")
    by_id = await g.get(f"/v1.0/me/calendars/{cal['id']}")
    assert {k: v for k, v in by_id.items() if k != "@odata.context"} == cal


async def test_shared_calendars_read_only_and_writable(
    graph_as: Callable[..., Any], client: Any
) -> None:
    g = graph_as()
    base = f"/_emulator/users/{g.user.id}/calendars"
    sharer = {"name": "Alex Wilber", "address": "alexw@contoso.example"}
    ro = await client.post(base, json={"name": "Alex (ro)", "access": "read", "owner": sharer})
    rw = await client.post(base, json={"name": "Alex (rw)", "access": "write", "owner": sharer})
    assert ro.status == rw.status == 201
    ro_id, rw_id = (await ro.json())["id"], (await rw.json())["id"]
    cals = {c["id"]: c for c in (await g.get("/v1.0/me/calendars"))["value"]}
    assert cals[ro_id]["canEdit"] is False and cals[ro_id]["canShare"] is False
    assert cals[rw_id]["canEdit"] is True and cals[rw_id]["canShare"] is False
    assert cals[rw_id]["owner"] == sharer and cals[rw_id]["isDefaultCalendar"] is False
    event = {
        "subject": "x",
        "start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "UTC"},
    }
    status, body, _ = await g.call("POST", f"/v1.0/me/calendars/{ro_id}/events", event)
    assert status == 403 and body["error"]["code"] == "ErrorAccessDenied"
    status, _, _ = await g.call("POST", f"/v1.0/me/calendars/{rw_id}/events", event)
    assert status == 201


async def test_unknown_and_malformed_calendar_ids(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    status, body, _ = await g.call("GET", "/v1.0/me/calendars/nope")
    assert status == 400 and body["error"]["code"] == "ErrorInvalidIdMalformed"
    real = (await g.get("/v1.0/me/calendar"))["id"]
    other = real[:20] + ("A" if real[20] != "A" else "B") + real[21:]
    status, body, _ = await g.call("GET", f"/v1.0/me/calendars/{other}")
    assert status == 404 and body["error"]["code"] == "ErrorItemNotFound"


async def test_calendars_need_a_calendar_scope(graph_as: Callable[..., Any]) -> None:
    g = graph_as(scopes=["User.Read"])
    status, body, _ = await g.call("GET", "/v1.0/me/calendars")
    assert status == 403 and body["error"]["code"] == "ErrorAccessDenied"
    ro = graph_as(scopes=["Calendars.Read"])
    assert (await ro.get("/v1.0/me/calendars"))["value"]


async def test_mailbox_settings_time_zone(graph_as: Callable[..., Any]) -> None:
    g = graph_as(time_zone="Pacific Standard Time", scopes=["User.Read"])
    settings = await g.get("/v1.0/me/mailboxSettings")
    assert settings["timeZone"] == "Pacific Standard Time"
    assert settings["workingHours"]["timeZone"] == {"name": "Pacific Standard Time"}
    tz = await g.get("/v1.0/me/mailboxSettings/timeZone")
    assert tz["value"] == "Pacific Standard Time"
    assert tz["@odata.context"].endswith("/mailboxSettings/timeZone")
    none = graph_as(scopes=["Calendars.Read"])
    status, _, _ = await none.call("GET", "/v1.0/me/mailboxSettings")
    assert status == 403


async def test_calendar_list_pages_with_skip(graph_as: Callable[..., Any], client: Any) -> None:
    g = graph_as()
    for i in range(3):
        await client.post(f"/_emulator/users/{g.user.id}/calendars", json={"name": f"c{i}"})
    first = await g.get("/v1.0/me/calendars?$top=2")
    assert len(first["value"]) == 2 and "$skip=2" in first["@odata.nextLink"]
    second = await g.get(first["@odata.nextLink"])
    assert len(second["value"]) == 2 and "@odata.nextLink" not in second
    names = [c["name"] for c in first["value"] + second["value"]]
    assert names == ["Calendar", "c0", "c1", "c2"]
