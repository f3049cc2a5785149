"""Change-notification delivery: payloads, scope, batching, retries, drops, faults."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from msgraph_emulator.changes import Change
from msgraph_emulator.state import EmulatorState
from msgraph_emulator.users import User

from .conftest import Webhook, wait_until
from .test_subscriptions import body

Client = TestClient  # type: ignore[type-arg]
EVENT = {
    "subject": "Notified",
    "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
    "end": {"dateTime": "2030-01-07T09:30:00", "timeZone": "UTC"},
}


async def subscribe(
    client: Client, hook: Webhook, headers: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    resp = await client.post("/v1.0/subscriptions", json=body(hook, **overrides), headers=headers)
    assert resp.status == 201, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


def change(
    state: EmulatorState,
    user: User,
    event_id: str = "AAMkEv1=",
    calendar: str | None = None,
    kind: str = "created",
) -> Change:
    """A change to ``event_id``; in the user's default calendar unless ``calendar`` is given."""
    if calendar is None:
        calendar = state.mailboxes.ensure(user).default_calendar().id
    return Change(user.id, user.tenant_id, calendar, event_id, kind)  # type: ignore[arg-type]


async def test_notification_payload_has_documented_fields(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers = auth_headers()
    sub = await subscribe(client, webhook, headers)
    created = await client.post(f"/_emulator/users/{user.id}/calendars/default/events", json=EVENT)
    event = await created.json()
    await webhook.wait_for(lambda: len(webhook.changes) == 1)
    item = webhook.changes[0]
    assert set(item) == {
        "id", "subscriptionId", "subscriptionExpirationDateTime", "changeType", "resource",
        "resourceData", "clientState", "tenantId",
    }  # fmt: skip
    assert item["subscriptionId"] == sub["id"]
    assert item["subscriptionExpirationDateTime"] == sub["expirationDateTime"]
    assert (item["changeType"], item["clientState"], item["tenantId"]) == (
        "created", "secret-state", user.tenant_id,
    )  # fmt: skip
    assert item["resource"] == f"Users/{user.id}/Events/{event['id']}"
    data = item["resourceData"]
    assert data["@odata.type"] == "#Microsoft.Graph.Event"
    assert data["@odata.id"] == item["resource"]
    assert data["id"] == event["id"]
    assert data["@odata.etag"] == event["@odata.etag"]
    assert webhook.posts[0]["query"] == {"tenant": "contoso"}  # query string kept


async def test_scope_change_types_and_other_mailboxes(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers = auth_headers()
    other, _ = auth_headers()
    whole = await subscribe(client, webhook, headers, changeType="created,deleted")
    one = await subscribe(client, webhook, headers, resource="/me/calendars/cal-2/events")
    state.changes.emit(change(state, user, "e1", None, "created"))
    state.changes.emit(change(state, user, "e2", None, "updated"))  # not subscribed by `whole`
    state.changes.emit(change(state, user, "e3", "cal-2", "updated"))  # only `one`
    state.changes.emit(change(state, other, "e4", None, "created"))  # someone else's mailbox
    state.changes.emit(change(state, user, "e5", "cal-3", "created"))  # /me/events: default only
    await webhook.wait_for(lambda: len(webhook.changes) == 2)
    got = sorted((c["subscriptionId"], c["resourceData"]["id"]) for c in webhook.changes)
    assert got == sorted([(whole["id"], "e1"), (one["id"], "e3")])


async def test_many_changes_share_few_posts(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers = auth_headers()
    await subscribe(client, webhook, headers)
    await subscribe(client, webhook, headers)  # two subscriptions, same URL
    for n in range(150):
        state.changes.emit(change(state, user, f"e{n}"))
    await webhook.wait_for(lambda: len(webhook.changes) == 300)
    sizes = [len(p["body"]["value"]) for p in webhook.posts]
    assert max(sizes) <= 100
    assert len(sizes) < 10
    assert len({c["id"] for c in webhook.changes}) == 300


async def test_failed_posts_are_retried_with_backoff(
    client: Client,
    webhook: Webhook,
    auth_headers: Callable[..., Any],
    fast_delivery: EmulatorState,
) -> None:
    user, headers = auth_headers()
    sub = await subscribe(client, webhook, headers)
    webhook.fail_next = 2
    fast_delivery.changes.emit(change(fast_delivery, user))
    await webhook.wait_for(lambda: len(webhook.changes) == 1)
    log = fast_delivery.subscriptions.deliveries
    await wait_until(fast_delivery, lambda: log.delivered_count == 1)
    resp = await client.get("/_emulator/deliveries", params={"subscriptionId": sub["id"]})
    attempts = (await resp.json())["attempts"]
    assert [(a["status"], a["attempt"], a["kind"]) for a in attempts] == [
        (503, 1, "change"), (503, 2, "change"), (202, 3, "change"),
    ]  # fmt: skip


async def test_notifications_are_dropped_after_the_retry_period(
    client: Client,
    webhook: Webhook,
    auth_headers: Callable[..., Any],
    fast_delivery: EmulatorState,
) -> None:
    fast_delivery.settings.notification_retry_for_s = 0.05
    user, headers = auth_headers()
    await subscribe(client, webhook, headers)
    webhook.fail_next = 1000
    fast_delivery.changes.emit(change(fast_delivery, user, "lost-one"))
    log = fast_delivery.subscriptions.deliveries
    await wait_until(fast_delivery, lambda: len(log.dropped) == 1)
    assert log.dropped[0]["resourceData"]["id"] == "lost-one"
    assert log.dropped[0]["attempts"] >= 2
    report = await (await client.get("/_emulator/deliveries")).json()
    assert report["dropped"][0]["resourceData"]["id"] == "lost-one"
    assert report["deliveredNotifications"] == 0


async def test_fault_duplicates_and_loss(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers = auth_headers()
    lossy, lossy_headers = auth_headers()
    await subscribe(client, webhook, headers)
    await subscribe(client, webhook, lossy_headers)
    resp = await client.put("/_emulator/faults", json={"duplicate_rate": 1.0, "seed": 7})
    assert resp.status == 200
    resp = await client.put(f"/_emulator/faults/users/{lossy.id}", json={"loss_rate": 1.0})
    assert resp.status == 200
    state.changes.emit(change(state, lossy, "gone"))
    state.changes.emit(change(state, user, "twice"))
    await webhook.wait_for(lambda: len(webhook.changes) == 2)
    assert [c["resourceData"]["id"] for c in webhook.changes] == ["twice", "twice"]
    lost = (await (await client.get("/_emulator/deliveries")).json())["lost"]
    assert [x["resourceData"]["id"] for x in lost] == ["gone"]
    bad = await client.put("/_emulator/faults", json={"loss_rate": 2})
    assert bad.status == 400


async def test_fault_reorder_is_deterministic_with_a_seed(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers = auth_headers()
    await subscribe(client, webhook, headers)
    orders = []
    for round_ in range(2):
        await client.put("/_emulator/faults", json={"reorder": True, "seed": 42})
        start = len(webhook.changes)
        for n in range(40):
            state.changes.emit(change(state, user, f"r{n}"))
        await webhook.wait_for(lambda s=start: len(webhook.changes) == s + 40)  # type: ignore[misc]
        orders.append([c["resourceData"]["id"] for c in webhook.changes[start:]])
        assert round_ >= 0
    assert orders[0] == orders[1]
    assert orders[0] != [f"r{n}" for n in range(40)]
    assert sorted(orders[0]) == sorted(f"r{n}" for n in range(40))


async def test_fault_delay_holds_notifications_back(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers = auth_headers()
    await subscribe(client, webhook, headers)
    await client.put(f"/_emulator/faults/users/{user.id}", json={"delay_ms": 80})
    loop = asyncio.get_running_loop()
    started = loop.time()
    state.changes.emit(change(state, user))
    await webhook.wait_for(lambda: len(webhook.changes) == 1)
    assert loop.time() - started >= 0.08
    faults = await (await client.get("/_emulator/faults")).json()
    assert faults["users"][user.id]["delay_ms"] == 80
    assert (await client.delete("/_emulator/faults")).status == 204


def test_sdk_models_parse_subscription_payload() -> None:
    import json

    from kiota_serialization_json.json_parse_node import JsonParseNode
    from msgraph.generated.models.subscription import Subscription as SdkSubscription

    from msgraph_emulator.notify.model import Subscription, parse_utc

    ours = Subscription(
        id="s1", resource="/me/events", application_id="app", change_types=("created",),
        notification_url="https://h/hook", expiration=parse_utc("2030-01-01T00:00:00Z"),
        creator_id="u", tenant_id="t", user_id="u", calendar_id=None, client_state="cs",
        lifecycle_notification_url="https://h/lc",
    )  # fmt: skip
    parsed = JsonParseNode(json.loads(json.dumps(ours.to_graph()))).get_object_value(
        SdkSubscription
    )
    assert parsed.additional_data == {}
    assert parsed.id == "s1"
    assert parsed.client_state == "cs"
    assert parsed.expiration_date_time is not None
    assert parsed.expiration_date_time.year == 2030
    assert parsed.latest_supported_tls_version == "v1_2"


async def test_event_created_over_graph_is_notified(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    user, headers = auth_headers()
    sub = await subscribe(client, webhook, headers)
    event = {
        "subject": "Planning",
        "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
    }
    resp = await client.post("/v1.0/me/events", json=event, headers=headers)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    await webhook.wait_for(lambda: len(webhook.changes) == 1)
    item = webhook.changes[0]
    assert (item["subscriptionId"], item["changeType"]) == (sub["id"], "created")
    assert item["resourceData"]["id"] == created["id"]
    assert item["resource"] == f"Users/{user.id}/Events/{created['id']}"
