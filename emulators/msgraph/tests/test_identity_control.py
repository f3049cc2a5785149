"""Control API (users, apps, whole state) and Graph ``/me``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from msgraph_emulator.users import PERSONAL_TENANT_ID, User


async def test_create_work_and_personal_users(sandbox_client: Any) -> None:
    work = await sandbox_client.post(
        "/_emulator/users",
        json={
            "kind": "work",
            "tenantId": "11111111-2222-3333-4444-555555555555",
            "userPrincipalName": "lee.gu@fabrikam.example",
            "displayName": "Lee Gu",
            "timeZone": "Eastern Standard Time",
        },
    )
    assert work.status == 201
    body = await work.json()
    assert body["tenantId"] == "11111111-2222-3333-4444-555555555555"
    assert body["timeZone"] == "Eastern Standard Time"
    personal = await (
        await sandbox_client.post(
            "/_emulator/users", json={"kind": "personal", "userPrincipalName": "kim@live.example"}
        )
    ).json()
    assert personal["tenantId"] == PERSONAL_TENANT_ID
    assert personal["id"].startswith("00000000-0000-0000-")
    dup = await sandbox_client.post(
        "/_emulator/users", json={"userPrincipalName": "LEE.GU@fabrikam.example"}
    )
    assert dup.status == 409
    listed = await (await sandbox_client.get("/_emulator/users")).json()
    upns = {u["userPrincipalName"] for u in listed["value"]}
    assert {"lee.gu@fabrikam.example", "kim@live.example", "adele.vance@contoso.example"} <= upns
    one = await (await sandbox_client.get("/_emulator/users/kim@live.example")).json()
    assert one["id"] == personal["id"]
    assert (await sandbox_client.get("/_emulator/users/nobody")).status == 404


async def test_bad_user_body_is_400(sandbox_client: Any) -> None:
    resp = await sandbox_client.post("/_emulator/users", json={"kind": "robot"})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "BadRequest"
    assert (await sandbox_client.post("/_emulator/users", data="{nope")).status == 400


async def test_sandbox_has_a_non_utc_mailbox_and_a_personal_account(sandbox_client: Any) -> None:
    users = (await (await sandbox_client.get("/_emulator/users")).json())["value"]
    assert any(u["timeZone"] == "Pacific Standard Time" for u in users)
    assert any(u["kind"] == "personal" for u in users)
    assert len([u for u in users if u["kind"] == "work"]) >= 2


async def test_register_app_shows_secret_once(sandbox_client: Any) -> None:
    resp = await sandbox_client.post(
        "/_emulator/identity/apps",
        json={"displayName": "Booking", "redirectUris": ["https://app.example/cb"]},
    )
    created = await resp.json()
    assert resp.status == 201
    assert len(created["clientSecret"]) >= 30
    listed = (await (await sandbox_client.get("/_emulator/identity/apps")).json())["value"]
    [mine] = [a for a in listed if a["clientId"] == created["clientId"]]
    assert "clientSecret" not in mine
    assert mine["redirectUris"] == ["https://app.example/cb"]


async def test_dump_reset_load_round_trip(sandbox_client: Any, idp: Any) -> None:
    await idp.tokens("adele.vance@contoso.example")
    dumped = await (await sandbox_client.get("/_emulator/state")).json()
    assert {"users", "identity"} <= set(dumped)
    assert dumped["identity"]["refreshTokens"]
    empty = await sandbox_client.post("/_emulator/reset", json={"seed": False})
    assert (await empty.json()) == {"users": 0}
    assert (await (await sandbox_client.get("/_emulator/users")).json())["value"] == []
    loaded = await sandbox_client.post("/_emulator/state", json={**dumped, "future": {}})
    assert (await loaded.json())["ignored"] == ["future"]
    again = await (await sandbox_client.get("/_emulator/state")).json()
    assert again["users"] == dumped["users"]
    assert again["identity"] == dumped["identity"]
    rt = dumped["identity"]["refreshTokens"][0]["token"]
    assert (await idp.refresh(rt)).status == 200  # loaded tokens work


async def test_reset_reseeds_the_sandbox(sandbox_client: Any) -> None:
    await sandbox_client.post("/_emulator/users", json={"userPrincipalName": "tmp@x.example"})
    reset = await sandbox_client.post("/_emulator/reset")
    assert (await reset.json()) == {"users": 4}
    assert (await sandbox_client.get("/_emulator/users/tmp@x.example")).status == 404


async def test_me_returns_graph_user(
    client: Any, make_user: Callable[..., User], token_for: Callable[..., str]
) -> None:
    user = make_user(name="Adele Vance")
    resp = await client.get("/v1.0/me", headers={"Authorization": f"Bearer {token_for(user)}"})
    body = await resp.json()
    assert resp.status == 200
    assert body["@odata.context"].endswith("/v1.0/$metadata#users/$entity")
    assert (body["id"], body["displayName"], body["userPrincipalName"]) == (
        user.id,
        "Adele Vance",
        user.user_principal_name,
    )
    assert (body["givenName"], body["surname"], body["mail"]) == (
        "Adele",
        "Vance",
        user.user_principal_name,
    )
    selected = await (
        await client.get(
            "/v1.0/me?$select=displayName",
            headers={"Authorization": f"Bearer {token_for(user)}"},
        )
    ).json()
    assert set(selected) == {"@odata.context", "displayName", "id"}


async def test_me_needs_user_read_and_a_token(
    client: Any, make_user: Callable[..., User], token_for: Callable[..., str]
) -> None:
    user = make_user()
    no_scope = await client.get(
        "/v1.0/me",
        headers={"Authorization": f"Bearer {token_for(user, scopes=['Calendars.Read'])}"},
    )
    assert no_scope.status == 403
    assert (await no_scope.json())["error"]["code"] == "ErrorAccessDenied"
    anonymous = await client.get("/v1.0/me")
    assert anonymous.status == 401
