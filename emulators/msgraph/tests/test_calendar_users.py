"""``/users/{id|userPrincipalName}/...``: self like /me, shares with .Shared scopes, 403, 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WINDOW = "startDateTime=2024-06-01T00:00:00Z&endDateTime=2024-07-01T00:00:00Z"
READ_SHARED = ("Calendars.Read", "Calendars.Read.Shared")
WRITE_SHARED = ("Calendars.ReadWrite", "Calendars.ReadWrite.Shared")


def _event(day: int, subject: str) -> dict[str, Any]:
    return {
        "subject": subject,
        "start": {"dateTime": f"2024-06-{day:02d}T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"2024-06-{day:02d}T10:00:00", "timeZone": "UTC"},
    }


async def _share(client: Any, owner: Any, sharee: Any, access: str) -> None:
    """The owner shares a calendar with the sharee (it appears in the sharee's mailbox)."""
    who = {"name": owner.display_name, "address": owner.user_principal_name.upper()}
    resp = await client.post(
        f"/_emulator/users/{sharee.id}/calendars",
        json={"name": f"{owner.display_name}'s calendar", "access": access, "owner": who},
    )
    assert resp.status == 201


async def test_own_mailbox_by_id_or_upn_is_like_me(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    upn = g.user.user_principal_name.upper()  # UPNs are case-insensitive
    me_cals = await g.get("/v1.0/me/calendars")
    by_upn = await g.get(f"/v1.0/users/{upn}/calendars")
    assert by_upn["value"] == me_cals["value"]
    assert by_upn["@odata.context"].endswith(
        f"/v1.0/$metadata#users('{upn.replace('@', '%40')}')/calendars"
    )
    cid = me_cals["value"][0]["id"]
    created = await g.post(f"/v1.0/users/{g.user.id}/calendar/events", _event(3, "mine"))
    assert (await g.get(f"/v1.0/me/events/{created['id']}"))["subject"] == "mine"
    view = await g.get(f"/v1.0/users/{upn}/calendars/{cid}/calendarView?{WINDOW}")
    assert [e["id"] for e in view["value"]] == [created["id"]]
    delta = f"/v1.0/users/{g.user.id}/calendars/{cid}/calendarView/delta?{WINDOW}"
    status, page, _ = await g.call("GET", delta, headers={"Prefer": "odata.maxpagesize=1"})
    assert status == 200 and [e["subject"] for e in page["value"]] == ["mine"]
    assert (
        f"/v1.0/users/{g.user.id}/calendars/{cid}/calendarView/delta?" in (page["@odata.deltaLink"])
    )
    status, _, _ = await g.call("DELETE", f"/v1.0/users/{upn}/events/{created['id']}")
    assert status == 204
    assert (await g.get(f"/v1.0/me/calendarView?{WINDOW}"))["value"] == []


async def test_unknown_or_foreign_user_is_invalid_user(
    graph_as: Callable[..., Any], make_user: Callable[..., Any]
) -> None:
    g = graph_as()
    elsewhere = make_user()  # another tenant: not resolvable from the caller's
    for ref in ("nobody@contoso.example", "6a1f9e61-0000-4000-8000-000000000000", elsewhere.id):
        status, err, _ = await g.call("GET", f"/v1.0/users/{ref}/calendar")
        assert status == 404, ref
        assert err["error"]["code"] == "ErrorInvalidUser"
        assert err["error"]["message"] == f"The requested user '{ref}' is invalid."


async def test_other_mailbox_without_share_is_access_denied(
    graph_as: Callable[..., Any], make_user: Callable[..., Any], client: Any
) -> None:
    owner = graph_as()
    peer = make_user(tenant_id=owner.user.tenant_id)
    g = graph_as(peer, scopes=WRITE_SHARED)
    # No share: a .Shared scope alone is not enough.
    for path in ("calendar", "calendars", "events", f"calendarView?{WINDOW}"):
        status, err, _ = await g.call("GET", f"/v1.0/users/{owner.user.id}/{path}")
        assert status == 403 and err["error"]["code"] == "ErrorAccessDenied", path
    # A share without a .Shared scope is not enough either.
    await _share(client, owner.user, peer, "write")
    plain = graph_as(peer, scopes=("Calendars.ReadWrite",))
    status, err, _ = await plain.call("GET", f"/v1.0/users/{owner.user.id}/calendar")
    assert status == 403 and err["error"]["message"].startswith("Access is denied.")
    assert (await g.get(f"/v1.0/users/{owner.user.id}/calendar"))["isDefaultCalendar"] is True


async def test_read_share_exposes_the_default_calendar_read_only(
    graph_as: Callable[..., Any], make_user: Callable[..., Any], client: Any
) -> None:
    owner = graph_as(name="Alex Wilber")
    resp = await client.post(f"/_emulator/users/{owner.user.id}/calendars", json={"name": "Hobby"})
    hobby = (await resp.json())["id"]
    shared = await owner.post("/v1.0/me/events", _event(4, "standup"))
    await owner.post(f"/v1.0/me/calendars/{hobby}/events", _event(5, "private stuff"))
    peer = make_user(tenant_id=owner.user.tenant_id)
    await _share(client, owner.user, peer, "read")
    g = graph_as(peer, scopes=READ_SHARED)
    base = f"/v1.0/users/{owner.user.user_principal_name}"
    (cal,) = (await g.get(f"{base}/calendars"))["value"]
    assert cal["isDefaultCalendar"] is True
    assert cal["canEdit"] is False and cal["canShare"] is False
    assert cal["owner"] == {"name": "Alex Wilber", "address": owner.user.user_principal_name}
    view = await g.get(f"{base}/calendarView?{WINDOW}")
    assert [e["subject"] for e in view["value"]] == ["standup"]
    assert view["value"][0]["organizer"]["emailAddress"]["name"] == "Alex Wilber"
    assert (await g.get(f"{base}/events/{shared['id']}"))["subject"] == "standup"
    status, err, _ = await g.call("GET", f"{base}/calendars/{hobby}/events")
    assert status == 403 and err["error"]["code"] == "ErrorAccessDenied"
    status, err, _ = await g.call("POST", f"{base}/events", _event(6, "sneaky"))
    assert status == 403 and err["error"]["code"] == "ErrorAccessDenied"
    status, _, _ = await g.call("DELETE", f"{base}/events/{shared['id']}")
    assert status == 403


async def test_write_share_lets_a_delegate_write_the_owners_calendar(
    graph_as: Callable[..., Any], make_user: Callable[..., Any], client: Any
) -> None:
    owner = graph_as()
    peer = make_user(tenant_id=owner.user.tenant_id)
    await _share(client, owner.user, peer, "write")
    g = graph_as(peer, scopes=WRITE_SHARED)
    base = f"/v1.0/users/{owner.user.id}/calendar"
    assert (await g.get(base))["canEdit"] is True
    created = await g.post(f"{base}/events", _event(7, "booked by delegate"))
    mine = await owner.get(f"/v1.0/me/events/{created['id']}")
    assert mine["subject"] == "booked by delegate"
    status, body, _ = await g.call("PATCH", f"{base}/events/{created['id']}", {"subject": "moved"})
    assert status == 200 and body["subject"] == "moved"
    # Read.Shared only: no writes even with a writable share.
    reader = graph_as(peer, scopes=READ_SHARED)
    status, _, _ = await reader.call("POST", f"{base}/events", _event(8, "nope"))
    assert status == 403


async def test_prefer_immutable_id_is_echoed_everywhere(graph_as: Callable[..., Any]) -> None:
    g = graph_as()
    prefer = {"Prefer": 'IdType="ImmutableId"'}
    created = await g.post("/v1.0/me/events", _event(9, "immutable"))
    for path in (
        "/v1.0/me/calendar",
        "/v1.0/me/calendars",
        "/v1.0/me/mailboxSettings",
        f"/v1.0/me/events/{created['id']}",
        f"/v1.0/me/calendarView/delta?{WINDOW}",
    ):
        status, _, headers = await g.call("GET", path, headers=prefer)
        assert status == 200 and headers["Preference-Applied"] == 'IdType="ImmutableId"', path
    both = {"Prefer": 'IdType="ImmutableId", outlook.timezone="Pacific Standard Time"'}
    status, body, headers = await g.call("GET", f"/v1.0/me/calendarView?{WINDOW}", headers=both)
    assert status == 200 and body["value"][0]["id"] == created["id"]
    assert headers["Preference-Applied"] == (
        'outlook.timezone="Pacific Standard Time",IdType="ImmutableId"'
    )
    status, _, headers = await g.call("DELETE", f"/v1.0/me/events/{created['id']}", headers=prefer)
    assert status == 204 and headers["Preference-Applied"] == 'IdType="ImmutableId"'
    status, _, headers = await g.call("GET", "/v1.0/me/calendar")
    assert status == 200 and "Preference-Applied" not in headers
