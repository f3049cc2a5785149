"""``resourceData["@odata.etag"]`` is the event's current etag, as a GET of the event returns it;
for ``deleted`` it is the last etag the event had (Microsoft's resourceData docs list the etag
for every Outlook notification and publish no sample without it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from msgraph_emulator.changes import Change
from msgraph_emulator.state import EmulatorState

from .conftest import Webhook
from .test_notifications import subscribe

Client = TestClient  # type: ignore[type-arg]
SINGLE = {
    "subject": "Review",
    "start": {"dateTime": "2030-03-04T10:00:00", "timeZone": "UTC"},
    "end": {"dateTime": "2030-03-04T11:00:00", "timeZone": "UTC"},
}
DAILY = {
    **SINGLE,
    "subject": "Daily",
    "recurrence": {
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": "2030-03-04", "numberOfOccurrences": 3},
    },
}


def etags(hook: Webhook) -> list[tuple[str, str | None]]:
    return [(c["changeType"], c["resourceData"].get("@odata.etag")) for c in hook.changes]


async def test_etag_tracks_create_update_and_delete(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    user, headers = auth_headers()
    await subscribe(client, webhook, headers)
    created = await (await client.post("/v1.0/me/events", json=SINGLE, headers=headers)).json()
    patched = await client.patch(
        f"/v1.0/me/events/{created['id']}", json={"subject": "Moved"}, headers=headers
    )
    updated = await patched.json()
    current = await (await client.get(f"/v1.0/me/events/{created['id']}", headers=headers)).json()
    assert updated["@odata.etag"] == current["@odata.etag"] != created["@odata.etag"]
    assert (await client.delete(f"/v1.0/me/events/{created['id']}", headers=headers)).status == 204
    await webhook.wait_for(lambda: len(webhook.changes) == 3)
    by_type = dict(etags(webhook))
    assert by_type == {
        "created": created["@odata.etag"],
        "updated": current["@odata.etag"],
        "deleted": current["@odata.etag"],  # the last etag the event had
    }
    assert user.id in webhook.changes[0]["resource"]


async def test_occurrence_edit_notifies_the_masters_new_etag(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    _, headers = auth_headers()
    await subscribe(client, webhook, headers, changeType="updated")
    master = await (await client.post("/v1.0/me/events", json=DAILY, headers=headers)).json()
    view = await client.get(
        "/v1.0/me/calendarView?startDateTime=2030-03-05T00:00:00Z&endDateTime=2030-03-06T00:00:00Z",
        headers=headers,
    )
    occurrence = (await view.json())["value"][0]
    await client.delete(f"/v1.0/me/events/{occurrence['id']}", headers=headers)  # cancels it
    await webhook.wait_for(lambda: len(webhook.changes) == 1)
    now = await (await client.get(f"/v1.0/me/events/{master['id']}", headers=headers)).json()
    assert webhook.changes[0]["resourceData"]["id"] == master["id"]
    assert webhook.changes[0]["resourceData"]["@odata.etag"] == now["@odata.etag"]
    assert now["@odata.etag"] != master["@odata.etag"]


async def test_event_created_before_the_subscription_keeps_its_etag_when_deleted(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any]
) -> None:
    user, headers = auth_headers()
    base = f"/_emulator/users/{user.id}"
    early = await (await client.post(f"{base}/calendars/default/events", json=SINGLE)).json()
    await subscribe(client, webhook, headers, changeType="deleted")
    assert (await client.delete(f"{base}/events/{early['id']}")).status == 204
    await webhook.wait_for(lambda: len(webhook.changes) == 1)
    assert etags(webhook) == [("deleted", early["@odata.etag"])]


async def test_unknown_event_has_no_etag_rather_than_a_made_up_one(
    client: Client, webhook: Webhook, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers = auth_headers()
    await subscribe(client, webhook, headers)
    calendar = state.mailboxes.ensure(user).default_calendar().id
    state.changes.emit(Change(user.id, user.tenant_id, calendar, "AAMkGhost=", "updated"))
    await webhook.wait_for(lambda: len(webhook.changes) == 1)
    assert "@odata.etag" not in webhook.changes[0]["resourceData"]
    assert webhook.changes[0]["resourceData"]["id"] == "AAMkGhost="
