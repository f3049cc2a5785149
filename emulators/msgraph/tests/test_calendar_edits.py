"""Changing calendars: a share made read-only or writable (control API), and Graph's
``PATCH /me/calendars/{id}`` / ``PATCH /me/calendar`` (name, color, isDefaultCalendar)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

EVENT = {
    "subject": "x",
    "start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "UTC"},
    "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "UTC"},
}
SHARER = {"name": "Alex Wilber", "address": "alexw@contoso.example"}


async def _control(client: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    resp = await client.request(method, path, json=body)
    return resp.status, (await resp.json() if resp.status != 204 else None)


async def _listed(g: Any, cid: str) -> dict[str, Any]:
    cals: dict[str, dict[str, Any]] = {
        c["id"]: c for c in (await g.get("/v1.0/me/calendars"))["value"]
    }
    return cals[cid]


async def test_access_change_flips_can_edit_and_write_refusal(
    graph_as: Callable[..., Any], client: Any
) -> None:
    g = graph_as()
    base = f"/_emulator/users/{g.user.id}/calendars"
    status, shared = await _control(
        client, "POST", base, {"name": "Alex", "access": "read", "owner": SHARER}
    )
    assert status == 201
    cid = shared["id"]
    assert (await _listed(g, cid))["canEdit"] is False
    status, body, _ = await g.call("POST", f"/v1.0/me/calendars/{cid}/events", EVENT)
    assert status == 403 and body["error"]["code"] == "ErrorAccessDenied"

    status, now = await _control(client, "PATCH", f"{base}/{cid}", {"access": "write"})
    assert status == 200 and now["access"] == "write" and now["canEdit"] is True
    assert now["changeKey"] != shared["changeKey"]
    listed = await _listed(g, cid)
    assert listed["canEdit"] is True and listed["canShare"] is False and listed["owner"] == SHARER
    event = await g.post(f"/v1.0/me/calendars/{cid}/events", EVENT)

    status, now = await _control(client, "PATCH", f"{base}/{cid}", {"access": "read"})
    assert status == 200 and now["canEdit"] is False
    assert (await _listed(g, cid))["canEdit"] is False
    for method, path, payload in (
        ("POST", f"/v1.0/me/calendars/{cid}/events", EVENT),
        ("PATCH", f"/v1.0/me/events/{event['id']}", {"subject": "mine"}),
        ("DELETE", f"/v1.0/me/calendars/{cid}/events/{event['id']}", None),
    ):
        status, body, _ = await g.call(method, path, payload)
        assert status == 403 and body["error"]["code"] == "ErrorAccessDenied", (method, path)
    assert (await g.get(f"/v1.0/me/events/{event['id']}"))["subject"] == "x"  # still readable


async def test_access_belongs_to_shares_and_bodies_are_checked(
    graph_as: Callable[..., Any], client: Any
) -> None:
    g = graph_as()
    base = f"/_emulator/users/{g.user.id}/calendars"
    _, own = await _control(client, "POST", base, {"name": "Own"})
    _, shared = await _control(
        client, "POST", base, {"name": "Alex", "access": "write", "owner": SHARER}
    )
    for cid, access in (("default", "read"), (own["id"], "write"), (shared["id"], "owner")):
        status, body = await _control(client, "PATCH", f"{base}/{cid}", {"access": access})
        assert status == 400 and body["error"]["code"] == "ErrorInvalidRequest", (cid, access)
    status, same = await _control(client, "PATCH", f"{base}/default", {"access": "owner"})
    assert status == 200 and same["access"] == "owner"
    for bad in ({}, {"access": "admin"}, {"acess": "read"}, {"name": 3}):
        status, body = await _control(client, "PATCH", f"{base}/{shared['id']}", bad)
        assert status == 400 and body["error"]["code"] == "RequestBodyRead", bad
    status, body = await _control(client, "PATCH", f"{base}/{shared['id']}", {"name": " "})
    assert status == 400 and body["error"]["code"] == "ErrorInvalidRequest"
    status, renamed = await _control(
        client, "PATCH", f"{base}/{shared['id']}", {"name": "Alex (team)", "access": "read"}
    )
    assert status == 200 and (renamed["name"], renamed["access"]) == ("Alex (team)", "read")
    real = own["id"]
    unknown = real[:20] + ("A" if real[20] != "A" else "B") + real[21:]
    status, body = await _control(client, "PATCH", f"{base}/{unknown}", {"name": "n"})
    assert status == 404 and body["error"]["code"] == "ErrorItemNotFound"
    assert (await client.patch("/_emulator/users/nobody/calendars/default", json={})).status == 404


async def test_delegate_writes_follow_the_share_access(
    graph_as: Callable[..., Any], client: Any
) -> None:
    owner = graph_as()
    delegate = graph_as(
        scopes=("Calendars.ReadWrite", "Calendars.ReadWrite.Shared"),
        tenant_id=owner.user.tenant_id,
    )
    who = {"name": owner.user.display_name, "address": owner.user.user_principal_name}
    base = f"/_emulator/users/{delegate.user.id}/calendars"
    _, share = await _control(
        client, "POST", base, {"name": "Owner", "access": "write", "owner": who}
    )
    path = f"/v1.0/users/{owner.user.id}/calendar/events"
    assert (await delegate.call("POST", path, EVENT))[0] == 201
    await _control(client, "PATCH", f"{base}/{share['id']}", {"access": "read"})
    status, body, _ = await delegate.call("POST", path, EVENT)
    assert status == 403 and body["error"]["code"] == "ErrorAccessDenied"
    cal = await delegate.get(f"/v1.0/users/{owner.user.id}/calendar")
    assert cal["canEdit"] is False  # reading still works, as read-only
    status, _, _ = await delegate.call(
        "PATCH", f"/v1.0/users/{owner.user.id}/calendar", {"name": "n"}
    )
    assert status == 403


async def test_graph_patch_renames_and_recolours_own_calendars(
    graph_as: Callable[..., Any], client: Any
) -> None:
    g = graph_as()
    default = await g.get("/v1.0/me/calendar")
    status, renamed, _ = await g.call("PATCH", "/v1.0/me/calendar", {"name": "Social events"})
    assert status == 200 and renamed["name"] == "Social events"
    assert renamed["@odata.context"].endswith(f"users('{g.user.id}')/calendar/$entity")
    assert renamed["changeKey"] != default["changeKey"] and renamed["id"] == default["id"]
    _, other = await _control(
        client, "POST", f"/_emulator/users/{g.user.id}/calendars", {"name": "Work"}
    )
    path = f"/v1.0/me/calendars/{other['id']}"
    # SDKs send the whole object back: read-only properties are ignored, enums read any case.
    echoed = {k: v for k, v in other.items() if k != "access"}
    status, patched, _ = await g.call("PATCH", path, echoed | {"color": "LIGHTBLUE", "name": "Job"})
    assert status == 200 and (patched["color"], patched["name"]) == ("lightBlue", "Job")
    assert patched["@odata.context"].endswith("/calendars/$entity")
    assert (await g.get(path))["color"] == "lightBlue"
    for bad, code in (
        ({"color": "purple"}, "RequestBodyRead"),
        ({"access": "read"}, "RequestBodyRead"),  # the control API's property, not Graph's
        ({"isDefaultCalendar": "yes"}, "RequestBodyRead"),
        ({"name": ""}, "ErrorInvalidRequest"),
        ({"isDefaultCalendar": False}, "ErrorInvalidRequest"),
    ):
        target = "/v1.0/me/calendar" if "isDefaultCalendar" in bad else path
        status, body, _ = await g.call("PATCH", target, bad)
        assert status == 400 and body["error"]["code"] == code, bad
    read_only = graph_as(user=g.user, scopes=["Calendars.Read"])
    status, body, _ = await read_only.call("PATCH", path, {"name": "no"})
    assert status == 403 and body["error"]["code"] == "ErrorAccessDenied"


async def test_graph_patch_moves_the_default_calendar(
    graph_as: Callable[..., Any], client: Any
) -> None:
    g = graph_as()
    old = await g.get("/v1.0/me/calendar")
    _, new = await _control(
        client, "POST", f"/_emulator/users/{g.user.id}/calendars", {"name": "New"}
    )
    _, shared = await _control(
        client,
        "POST",
        f"/_emulator/users/{g.user.id}/calendars",
        {"name": "Alex", "access": "write", "owner": SHARER},
    )
    status, body, _ = await g.call(
        "PATCH", f"/v1.0/me/calendars/{shared['id']}", {"isDefaultCalendar": True}
    )
    assert status == 400 and body["error"]["code"] == "ErrorInvalidRequest"
    status, now, _ = await g.call(
        "PATCH", f"/v1.0/me/calendars/{new['id']}", {"isDefaultCalendar": True}
    )
    assert status == 200 and now["isDefaultCalendar"] is True and now["isRemovable"] is False
    assert (await g.get("/v1.0/me/calendar"))["id"] == new["id"]
    before = await _listed(g, old["id"])
    assert before["isDefaultCalendar"] is False and before["isRemovable"] is True
    created = await g.post("/v1.0/me/events", EVENT)  # /me/events is the default calendar
    assert (await g.get(f"/v1.0/me/calendars/{new['id']}/events/{created['id']}"))["id"]
