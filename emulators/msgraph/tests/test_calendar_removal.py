"""Removing calendars: control ``DELETE /_emulator/users/{uid}/calendars/{cid}`` and Graph's
``DELETE /me/calendars/{id}`` (not the default calendar); what answers 404 afterwards; the
``subscriptionRemoved`` lifecycle notification for subscriptions on the removed calendar."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from msgraph_emulator.changes import Change
from msgraph_emulator.state import EmulatorState

from .conftest import Webhook
from .test_notifications import subscribe

Client = TestClient  # type: ignore[type-arg]
WINDOW = "startDateTime=2030-01-01T00:00:00Z&endDateTime=2030-02-01T00:00:00Z"
EVENT = {
    "subject": "x",
    "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
    "end": {"dateTime": "2030-01-07T09:30:00", "timeZone": "UTC"},
}


async def _calendar(client: Client, user_id: str, **body: Any) -> dict[str, Any]:
    resp = await client.post(f"/_emulator/users/{user_id}/calendars", json={"name": "Work"} | body)
    assert resp.status == 201, await resp.text()
    created: dict[str, Any] = await resp.json()
    return created


def _not_found(status: int, body: Any) -> bool:
    return status == 404 and body["error"]["code"] == "ErrorItemNotFound"


async def test_deleted_calendar_and_its_events_answer_404(
    graph_as: Callable[..., Any], client: Client, state: EmulatorState
) -> None:
    g = graph_as()
    cid = (await _calendar(client, g.user.id))["id"]
    event = await g.post(f"/v1.0/me/calendars/{cid}/events", EVENT | {"transactionId": "t-1"})
    delta = await g.get(f"/v1.0/me/calendars/{cid}/calendarView/delta?{WINDOW}")
    assert [e["id"] for e in delta["value"]] == [event["id"]]
    resp = await client.delete(f"/_emulator/users/{g.user.id}/calendars/{cid}")
    assert resp.status == 204
    assert cid not in [c["id"] for c in (await g.get("/v1.0/me/calendars"))["value"]]
    for path in (
        f"/v1.0/me/calendars/{cid}",
        f"/v1.0/me/calendars/{cid}/events",
        f"/v1.0/me/events/{event['id']}",
        f"/v1.0/me/calendars/{cid}/calendarView?{WINDOW}",
        f"/v1.0/me/calendars/{cid}/calendarView/delta?{WINDOW}",
        delta["@odata.deltaLink"],  # a saved delta link: 404, not an empty round or 410
        f"/_emulator/users/{g.user.id}/calendars/{cid}/busy?start=2030-01-01T00:00:00Z&end=2030-01-09T00:00:00Z",
    ):
        status, body, _ = await g.call("GET", path)
        assert _not_found(status, body), path
    status, body, _ = await g.call("POST", f"/v1.0/me/calendars/{cid}/events", EVENT)
    assert _not_found(status, body)
    again = await client.delete(f"/_emulator/users/{g.user.id}/calendars/{cid}")
    assert again.status == 404
    dumped = state.mailboxes.dump()[g.user.id]["calendars"]
    assert [c["isDefaultCalendar"] for c in dumped] == [True]
    # The event went with its calendar: its transactionId is free again.
    fresh = await g.post("/v1.0/me/events", EVENT | {"transactionId": "t-1"})
    assert fresh["id"] != event["id"]


async def test_default_calendar_cannot_be_deleted(
    graph_as: Callable[..., Any], client: Client
) -> None:
    g = graph_as()
    default = await g.get("/v1.0/me/calendar")
    for method_path in (
        f"/_emulator/users/{g.user.id}/calendars/default",
        f"/_emulator/users/{g.user.id}/calendars/{default['id']}",
    ):
        resp = await client.delete(method_path)
        body = await resp.json()
        assert resp.status == 400 and body["error"]["code"] == "ErrorDeleteDistinguishedFolder"
    for path in ("/v1.0/me/calendar", f"/v1.0/me/calendars/{default['id']}"):
        status, body, _ = await g.call("DELETE", path)
        assert status == 400 and body["error"]["code"] == "ErrorDeleteDistinguishedFolder"
        assert body["error"]["message"] == "Distinguished folders cannot be deleted."
    assert [c["id"] for c in (await g.get("/v1.0/me/calendars"))["value"]] == [default["id"]]


async def test_graph_deletes_own_and_shared_calendars(
    graph_as: Callable[..., Any], client: Client
) -> None:
    g = graph_as()
    own = await _calendar(client, g.user.id)
    shared = await _calendar(
        client,
        g.user.id,
        name="Alex",
        access="read",
        owner={"name": "Alex", "address": "alexw@contoso.example"},
    )
    event = await g.post(f"/v1.0/me/calendars/{own['id']}/events", EVENT)
    read_only = graph_as(user=g.user, scopes=["Calendars.Read"])
    status, body, _ = await read_only.call("DELETE", f"/v1.0/me/calendars/{own['id']}")
    assert status == 403 and body["error"]["code"] == "ErrorAccessDenied"
    for cid in (own["id"], shared["id"]):  # both are isRemovable
        status, _, _ = await g.call("DELETE", f"/v1.0/users/{g.user.id}/calendars/{cid}")
        assert status == 204
    assert len((await g.get("/v1.0/me/calendars"))["value"]) == 1
    status, body, _ = await g.call("GET", f"/v1.0/me/events/{event['id']}")
    assert _not_found(status, body)


async def test_removing_a_share_withdraws_delegate_access(
    graph_as: Callable[..., Any], client: Client
) -> None:
    owner = graph_as()
    delegate = graph_as(
        scopes=("Calendars.ReadWrite", "Calendars.ReadWrite.Shared"),
        tenant_id=owner.user.tenant_id,
    )
    share = await _calendar(
        client,
        delegate.user.id,
        access="write",
        owner={"name": "Owner", "address": owner.user.user_principal_name},
    )
    path = f"/v1.0/users/{owner.user.id}/calendar"
    assert (await delegate.get(path))["canEdit"] is True
    status, _, _ = await delegate.call("DELETE", path)
    assert status == 403  # a delegate can't delete the owner's calendar
    resp = await client.delete(f"/_emulator/users/{delegate.user.id}/calendars/{share['id']}")
    assert resp.status == 204
    status, body, _ = await delegate.call("GET", path)
    assert status == 403 and body["error"]["code"] == "ErrorAccessDenied"
    assert (await owner.get("/v1.0/me/calendar"))["id"]  # the owner's calendar is untouched


async def test_subscriptions_on_a_removed_calendar_get_subscription_removed(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers = auth_headers()
    cid = (await _calendar(client, user.id))["id"]
    other = (await _calendar(client, user.id, name="Other"))["id"]
    created = await client.post(f"/_emulator/users/{user.id}/calendars/{cid}/events", json=EVENT)
    assert created.status == 201
    watched = await subscribe(client, webhook, headers, resource=f"/me/calendars/{cid}/events")
    by_user = await subscribe(
        client, webhook, headers, resource=f"users/{user.id}/calendars/{cid}/events"
    )
    kept = [
        await subscribe(client, webhook, headers, resource="/me/events"),
        await subscribe(client, webhook, headers, resource=f"/me/calendars/{other}/events"),
    ]
    seen: list[Change] = []
    state.changes.subscribe(seen.append)
    resp = await client.delete(f"/v1.0/me/calendars/{cid}", headers=headers)
    assert resp.status == 204
    assert seen == []  # the folder goes as a whole: no per-event "deleted" change
    await webhook.wait_for(lambda: len(webhook.lifecycle) == 2)
    assert {(e["lifecycleEvent"], e["subscriptionId"]) for e in webhook.lifecycle} == {
        ("subscriptionRemoved", watched["id"]),
        ("subscriptionRemoved", by_user["id"]),
    }
    for sub in (watched, by_user):
        assert (await client.get(f"/v1.0/subscriptions/{sub['id']}", headers=headers)).status == 404
    for sub in kept:
        assert (await client.get(f"/v1.0/subscriptions/{sub['id']}", headers=headers)).status == 200
    # The other subscriptions still deliver.
    await client.post(f"/_emulator/users/{user.id}/calendars/{other}/events", json=EVENT)
    await webhook.wait_for(lambda: len(webhook.changes) == 1)
    assert webhook.changes[0]["subscriptionId"] == kept[1]["id"]
    assert webhook.changes[0]["changeType"] == "created"
    assert sorted(s.id for s in state.subscriptions.for_user(user.id)) == sorted(
        s["id"] for s in kept
    )
