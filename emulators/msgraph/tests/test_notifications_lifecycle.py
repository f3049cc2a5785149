"""Lifecycle notifications: removal, missed, reauthorization (pause/resume), revocation hook."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from msgraph_emulator.state import EmulatorState

from .conftest import Webhook
from .test_notifications import change, subscribe
from .test_subscriptions import in_minutes

Client = TestClient  # type: ignore[type-arg]
LIFECYCLE_FIELDS = {
    "subscriptionId", "subscriptionExpirationDateTime", "tenantId", "clientState",
    "lifecycleEvent",
}  # fmt: skip


async def test_subscription_removed_is_sent_and_the_subscription_deleted(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    user, headers = auth_headers()
    sub = await subscribe(client, webhook, headers)
    resp = await client.post(f"/_emulator/subscriptions/{sub['id']}/remove")
    assert resp.status == 202
    await webhook.wait_for(lambda: len(webhook.lifecycle) == 1)
    event = webhook.lifecycle[0]
    assert set(event) == LIFECYCLE_FIELDS
    assert (event["lifecycleEvent"], event["subscriptionId"]) == ("subscriptionRemoved", sub["id"])
    assert (event["tenantId"], event["clientState"]) == (user.tenant_id, "secret-state")
    assert (await client.get(f"/v1.0/subscriptions/{sub['id']}", headers=headers)).status == 404


async def test_missed_is_sent(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    _, headers = auth_headers()
    sub = await subscribe(client, webhook, headers)
    assert (await client.post(f"/_emulator/subscriptions/{sub['id']}/missed")).status == 202
    await webhook.wait_for(lambda: len(webhook.lifecycle) == 1)
    assert webhook.lifecycle[0]["lifecycleEvent"] == "missed"
    assert (await client.get(f"/v1.0/subscriptions/{sub['id']}", headers=headers)).status == 200
    unknown = await client.post("/_emulator/subscriptions/nope/missed")
    assert unknown.status == 404


async def test_reauthorization_pauses_delivery_until_reauthorize(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers = auth_headers()
    sub = await subscribe(client, webhook, headers)
    await client.post(f"/_emulator/subscriptions/{sub['id']}/reauthorization-required")
    await webhook.wait_for(lambda: len(webhook.lifecycle) == 1)
    assert webhook.lifecycle[0]["lifecycleEvent"] == "reauthorizationRequired"
    state.changes.emit(change(state, user, "held"))
    listing = await (await client.get("/_emulator/subscriptions")).json()
    assert listing["value"][0]["needsReauthorization"] is True
    assert listing["value"][0]["heldNotifications"] == 1
    assert webhook.changes == []
    resp = await client.post(f"/v1.0/subscriptions/{sub['id']}/reauthorize", headers=headers)
    assert resp.status == 204
    await webhook.wait_for(lambda: len(webhook.changes) == 1)
    assert webhook.changes[0]["resourceData"]["id"] == "held"


async def test_renewal_patch_also_reauthorizes(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers = auth_headers()
    sub = await subscribe(client, webhook, headers)
    state.subscriptions.on_user_revoked(user.id)  # the hook the identity part calls
    await webhook.wait_for(lambda: len(webhook.lifecycle) == 1)
    assert webhook.lifecycle[0]["lifecycleEvent"] == "reauthorizationRequired"
    state.changes.emit(change(state, user, "after-revoke"))
    resp = await client.patch(
        f"/v1.0/subscriptions/{sub['id']}",
        json={"expirationDateTime": in_minutes(120)},
        headers=headers,
    )
    assert resp.status == 200
    await webhook.wait_for(lambda: len(webhook.changes) == 1)
    assert webhook.changes[0]["resourceData"]["id"] == "after-revoke"


async def test_revocation_through_the_control_api(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    user, headers = auth_headers()
    first = await subscribe(client, webhook, headers)
    second = await subscribe(client, webhook, headers, resource="/me/calendars/c2/events")
    resp = await client.post(f"/_emulator/subscriptions/users/{user.id}/revoked")
    assert resp.status == 202
    assert sorted((await resp.json())["subscriptionIds"]) == sorted([first["id"], second["id"]])
    await webhook.wait_for(lambda: len(webhook.lifecycle) == 2)
    assert {e["lifecycleEvent"] for e in webhook.lifecycle} == {"reauthorizationRequired"}


async def test_reauthorization_required_is_sent_before_expiry(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    _, headers = auth_headers()
    sub = await subscribe(client, webhook, headers, expirationDateTime=in_minutes(30))
    later = datetime.now(UTC) + timedelta(minutes=25)  # inside the 10-minute notice window
    state.subscriptions.clock = lambda: later
    assert (await client.post("/_emulator/subscriptions/sweep")).status == 200
    await client.post("/_emulator/subscriptions/sweep")  # sent once only
    await webhook.wait_for(lambda: len(webhook.lifecycle) == 1)
    assert webhook.lifecycle[0] == {
        **webhook.lifecycle[0],
        "subscriptionId": sub["id"],
        "lifecycleEvent": "reauthorizationRequired",
    }
    assert len([p for p in webhook.posts if p["path"] == "lifecycle"]) == 1


async def test_without_lifecycle_url_nothing_is_sent(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers = auth_headers()
    sub = await subscribe(client, webhook, headers, lifecycleNotificationUrl=None)
    assert sub["lifecycleNotificationUrl"] is None
    await client.post(f"/_emulator/subscriptions/{sub['id']}/remove")
    assert state.subscriptions.get(sub["id"]) is None
    assert [p["path"] for p in webhook.posts] == []
    assert user.id not in state.subscriptions.by_user
