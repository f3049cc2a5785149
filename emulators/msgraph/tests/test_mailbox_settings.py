"""``mailboxSettings`` (``/me`` and ``/users/{id|upn}``): the time zone as the user set it
(Windows or IANA name), and event reads in either form of the same zone."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from msgraph_emulator.state import EmulatorState

Client = TestClient  # type: ignore[type-arg]
ZONES = {"iana": "Europe/Bucharest", "windows": "GTB Standard Time"}  # the same zone
WINDOW = "startDateTime=2024-01-01T00:00:00Z&endDateTime=2024-12-31T00:00:00Z"


async def _create_user(client: Client, tenant: str, time_zone: str) -> dict[str, Any]:
    upn = f"tz.{uuid.uuid4().hex[:8]}@contoso.example"
    body = {"userPrincipalName": upn, "tenantId": tenant, "timeZone": time_zone}
    resp = await client.post("/_emulator/users", json=body)
    assert resp.status == 201, await resp.text()
    created: dict[str, Any] = await resp.json()
    assert created["timeZone"] == time_zone
    return created


def _bearer(state: EmulatorState, token_for: Callable[..., str], user_id: str) -> dict[str, str]:
    user = state.users.get(user_id)
    assert user is not None
    return {"Authorization": f"Bearer {token_for(user)}"}


async def test_time_zone_is_returned_as_set_in_iana_or_windows_form(
    client: Client, state: EmulatorState, token_for: Callable[..., str]
) -> None:
    tenant = str(uuid.uuid4())
    for time_zone in ZONES.values():
        user = await _create_user(client, tenant, time_zone)
        headers = _bearer(state, token_for, user["id"])
        for base in ("/v1.0/me", f"/v1.0/users/{user['id']}"):
            resp = await client.get(f"{base}/mailboxSettings", headers=headers)
            assert resp.status == 200, await resp.text()
            settings = await resp.json()
            assert settings["timeZone"] == time_zone  # not converted to the other form
            assert settings["workingHours"]["timeZone"] == {"name": time_zone}
            resp = await client.get(f"{base}/mailboxSettings/timeZone", headers=headers)
            assert (await resp.json())["value"] == time_zone
        resp = await client.get(f"/_emulator/users/{user['userPrincipalName']}")
        assert (await resp.json())["timeZone"] == time_zone


async def test_prefer_timezone_in_either_form_gives_the_same_wall_clock(
    client: Client, state: EmulatorState, token_for: Callable[..., str]
) -> None:
    tenant = str(uuid.uuid4())
    for form, time_zone in ZONES.items():
        user = await _create_user(client, tenant, time_zone)
        headers = _bearer(state, token_for, user["id"])
        ids = []
        for day in ("2024-01-15", "2024-07-15"):  # EET (UTC+2) and EEST (UTC+3)
            event = {
                "subject": f"{form} {day}",
                "start": {"dateTime": f"{day}T10:00:00", "timeZone": time_zone},
                "end": {"dateTime": f"{day}T11:00:00", "timeZone": time_zone},
            }
            resp = await client.post("/v1.0/me/events", json=event, headers=headers)
            assert resp.status == 201, await resp.text()
            ids.append((await resp.json())["id"])
        utc = await client.get(f"/v1.0/me/events/{ids[1]}", headers=headers)
        assert (await utc.json())["start"]["dateTime"] == "2024-07-15T07:00:00.0000000"
        seen: dict[str, list[tuple[str, str]]] = {}
        for prefer in ZONES.values():
            prefer_headers = headers | {"Prefer": f'outlook.timezone="{prefer}"'}
            resp = await client.get(f"/v1.0/me/calendarView?{WINDOW}", headers=prefer_headers)
            assert resp.headers["Preference-Applied"] == f'outlook.timezone="{prefer}"'
            items = (await resp.json())["value"]
            assert {i["start"]["timeZone"] for i in items} == {prefer}  # the label as sent
            seen[prefer] = [(i["start"]["dateTime"], i["end"]["dateTime"]) for i in items]
            resp = await client.get(f"/v1.0/me/events/{ids[0]}", headers=prefer_headers)
            assert (await resp.json())["start"] == {
                "dateTime": "2024-01-15T10:00:00.0000000",
                "timeZone": prefer,
            }
        assert (
            seen[ZONES["iana"]]
            == seen[ZONES["windows"]]
            == [
                ("2024-01-15T10:00:00.0000000", "2024-01-15T11:00:00.0000000"),
                ("2024-07-15T10:00:00.0000000", "2024-07-15T11:00:00.0000000"),
            ]
        )


async def test_unknown_time_zone_is_refused_by_the_control_api(client: Client) -> None:
    body = {"userPrincipalName": "nowhere@contoso.example", "timeZone": "Mars/Olympus_Mons"}
    resp = await client.post("/_emulator/users", json=body)
    assert resp.status == 400
    assert "Mars/Olympus_Mons" in (await resp.json())["error"]["message"]
    assert (await client.get("/_emulator/users/nowhere@contoso.example")).status == 404


async def test_other_users_mailbox_settings_follow_the_users_route_rules(
    client: Client, graph_as: Callable[..., Any], make_user: Callable[..., Any]
) -> None:
    owner = graph_as(time_zone="Europe/Bucharest")
    peer = make_user(tenant_id=owner.user.tenant_id)
    reader = graph_as(peer, scopes=("User.Read", "Calendars.Read.Shared"))
    path = f"/v1.0/users/{owner.user.id}/mailboxSettings"
    status, err, _ = await reader.call("GET", path)
    assert status == 403 and err["error"]["code"] == "ErrorAccessDenied"  # no share yet
    status, err, _ = await reader.call("GET", "/v1.0/users/nobody@contoso.example/mailboxSettings")
    assert status == 404 and err["error"]["code"] == "ErrorInvalidUser"
    share = {
        "name": "Shared",
        "access": "read",
        "owner": {"name": owner.user.display_name, "address": owner.user.user_principal_name},
    }
    assert (await client.post(f"/_emulator/users/{peer.id}/calendars", json=share)).status == 201
    upn = owner.user.user_principal_name
    settings = await reader.get(f"/v1.0/users/{upn}/mailboxSettings")
    assert settings["timeZone"] == "Europe/Bucharest"
    assert settings["@odata.context"].endswith(
        f"$metadata#users('{upn.replace('@', '%40')}')/mailboxSettings"
    )
    tz = await reader.get(f"{path}/timeZone")
    assert tz["value"] == "Europe/Bucharest"
    no_shared_scope = graph_as(peer, scopes=("User.Read", "Calendars.Read"))
    status, err, _ = await no_shared_scope.call("GET", path)
    assert status == 403 and err["error"]["code"] == "ErrorAccessDenied"
