"""Identity control actions reach subscriptions: revoking a user's sessions or withdrawing an
app's consent sends ``reauthorizationRequired`` (reference §5.6: "an administrator has revoked
your app's permissions") and holds change notifications until the app reauthorizes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from msgraph_emulator.state import EmulatorState

from .conftest import Webhook, wait_until
from .test_notifications import subscribe

Client = TestClient  # type: ignore[type-arg]
APP_A = "aaaaaaaa-0000-4000-8000-00000000000a"
APP_B = "bbbbbbbb-0000-4000-8000-00000000000b"
EVENT = {
    "subject": "Standup",
    "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
    "end": {"dateTime": "2030-01-07T09:15:00", "timeZone": "UTC"},
}


def lifecycle_for(hook: Webhook, sub_id: str) -> list[str]:
    return [e["lifecycleEvent"] for e in hook.lifecycle if e["subscriptionId"] == sub_id]


async def test_withdrawing_one_apps_consent_reauthorizes_only_its_subscriptions(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers_a = auth_headers(client_id=APP_A)
    _, headers_b = auth_headers(user, client_id=APP_B)
    sub_a = await subscribe(client, webhook, headers_a)
    sub_b = await subscribe(client, webhook, headers_b)

    resp = await client.delete(f"/_emulator/users/{user.id}/consents/{APP_A}")
    assert resp.status == 200
    assert (await resp.json())["reauthorizationRequired"] == [sub_a["id"]]
    await webhook.wait_for(lambda: len(webhook.lifecycle) == 1)
    assert lifecycle_for(webhook, sub_a["id"]) == ["reauthorizationRequired"]
    assert webhook.lifecycle[0]["clientState"] == "secret-state"

    # A's change notifications are held, B's keep flowing.
    created = await client.post(f"/_emulator/users/{user.id}/calendars/default/events", json=EVENT)
    assert created.status == 201
    event_id = (await created.json())["id"]
    await webhook.wait_for(lambda: len(webhook.changes) == 1)
    assert webhook.changes[0]["subscriptionId"] == sub_b["id"]
    assert webhook.changes[0]["resourceData"]["id"] == event_id
    subs = (await (await client.get("/_emulator/subscriptions")).json())["value"]
    listing = {s["id"]: s for s in subs}
    assert listing[sub_a["id"]]["needsReauthorization"] is True
    assert listing[sub_a["id"]]["heldNotifications"] == 1
    assert listing[sub_b["id"]]["needsReauthorization"] is False

    # Reauthorizing releases what was held.
    resp = await client.post(f"/v1.0/subscriptions/{sub_a['id']}/reauthorize", headers=headers_a)
    assert resp.status == 204
    await webhook.wait_for(lambda: len(webhook.changes) == 2)
    assert webhook.changes[1]["subscriptionId"] == sub_a["id"]
    assert lifecycle_for(webhook, sub_b["id"]) == []


async def test_revoking_sessions_reauthorizes_every_subscription_of_the_user(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers_a = auth_headers(client_id=APP_A)
    _, headers_b = auth_headers(user, client_id=APP_B)
    bystander, headers_c = auth_headers(client_id=APP_A)
    sub_a = await subscribe(client, webhook, headers_a)
    sub_b = await subscribe(client, webhook, headers_b, resource=f"/users/{user.id}/events")
    sub_c = await subscribe(client, webhook, headers_c)

    resp = await client.post(f"/_emulator/users/{user.user_principal_name}/revoke-sessions")
    assert resp.status == 200
    body = await resp.json()
    assert sorted(body["reauthorizationRequired"]) == sorted([sub_a["id"], sub_b["id"]])
    assert body["tokensValidFrom"]
    await wait_until(state, lambda: len(webhook.lifecycle) == 2)
    assert {e["subscriptionId"] for e in webhook.lifecycle} == {sub_a["id"], sub_b["id"]}
    assert {e["lifecycleEvent"] for e in webhook.lifecycle} == {"reauthorizationRequired"}
    assert {e["tenantId"] for e in webhook.lifecycle} == {user.tenant_id}
    assert state.subscriptions.by_id[sub_c["id"]].needs_reauthorization is False
    assert bystander.id != user.id


async def test_withdrawing_all_consents_reauthorizes_all_apps(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    user, headers_a = auth_headers(client_id=APP_A)
    _, headers_b = auth_headers(user, client_id=APP_B)
    sub_a = await subscribe(client, webhook, headers_a)
    sub_b = await subscribe(client, webhook, headers_b)
    resp = await client.delete(f"/_emulator/users/{user.id}/consents")
    assert resp.status == 200
    assert sorted((await resp.json())["reauthorizationRequired"]) == sorted(
        [sub_a["id"], sub_b["id"]]
    )
    await webhook.wait_for(lambda: len(webhook.lifecycle) == 2)
    assert lifecycle_for(webhook, sub_b["id"]) == ["reauthorizationRequired"]
