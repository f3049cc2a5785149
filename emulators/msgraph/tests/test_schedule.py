"""``POST /me/calendar/getSchedule``: availability view, schedule items, errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient

from msgraph_emulator.graph.schedule_view import availability_view
from msgraph_emulator.notify.mailbox_view import BusyInstance
from msgraph_emulator.users import PERSONAL_TENANT_ID

Client = TestClient  # type: ignore[type-arg]
TENANT = "7a0e5b3c-2a8f-4f44-9d57-3d2b1c0f9e11"


async def add_event(
    client: Client,
    headers: dict[str, str],
    start: str,
    end: str,
    show_as: str,
    subject: str,
    **extra: Any,
) -> None:
    event = {
        "subject": subject, "showAs": show_as,
        "start": {"dateTime": start, "timeZone": "UTC"},
        "end": {"dateTime": end, "timeZone": "UTC"}, **extra,
    }  # fmt: skip
    resp = await client.post("/v1.0/me/events", json=event, headers=headers)
    assert resp.status == 201, await resp.text()


def request_body(*addresses: str, interval: int | None = 60) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "schedules": list(addresses),
        "startTime": {"dateTime": "2030-01-07T08:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2030-01-07T14:00:00", "timeZone": "UTC"},
    }
    if interval is not None:
        payload["availabilityViewInterval"] = interval
    return payload


async def test_get_schedule_for_a_colleague(
    client: Client, auth_headers: Callable[..., Any], make_user: Callable[..., Any]
) -> None:
    me, headers = auth_headers(make_user(tenant_id=TENANT))
    colleague, colleague_headers = auth_headers(make_user(tenant_id=TENANT, name="Megan Bowen"))
    await add_event(
        client,
        colleague_headers,
        "2030-01-07T09:00:00",
        "2030-01-07T10:00:00",
        "busy",
        "Standup",
        location={"displayName": "Room 1"},
    )
    await add_event(
        client,
        colleague_headers,
        "2030-01-07T09:30:00",
        "2030-01-07T11:00:00",
        "tentative",
        "Maybe",
    )
    await add_event(
        client,
        colleague_headers,
        "2030-01-07T12:00:00",
        "2030-01-07T13:00:00",
        "oof",
        "Secret",
        sensitivity="private",
    )
    resp = await client.post(
        "/v1.0/me/calendar/getSchedule",
        json=request_body(colleague.user_principal_name, "nobody@contoso.example"),
        headers={**headers, "Prefer": 'outlook.timezone="Pacific Standard Time"'},
    )
    assert resp.status == 200, await resp.text()
    payload = await resp.json()
    assert payload["@odata.context"].endswith("#Collection(microsoft.graph.scheduleInformation)")
    found, missing = payload["value"]
    assert found["scheduleId"] == colleague.user_principal_name
    assert found["availabilityView"] == "021030"  # 08 free, 09 busy, 10 tent, 11 free, 12 oof
    items = found["scheduleItems"]
    assert [i["status"] for i in items] == ["busy", "tentative", "oof"]
    assert items[0]["subject"] == "Standup"
    assert items[0]["location"] == "Room 1"
    assert items[0]["start"] == {
        "dateTime": "2030-01-07T01:00:00.0000000",
        "timeZone": "Pacific Standard Time",
    }
    assert items[2]["isPrivate"] is True
    assert "subject" not in items[2]
    assert found["workingHours"]["daysOfWeek"][0] == "monday"
    assert missing["error"]["responseCode"] == "ErrorMailRecipientNotFound"
    assert me.id != colleague.id


async def test_recurring_series_with_an_exception_and_a_cancelled_occurrence(
    client: Client, auth_headers: Callable[..., Any], make_user: Callable[..., Any]
) -> None:
    """getSchedule reads the calendar index: a series' occurrences, an exception moved and
    re-statused, a cancelled occurrence left out, plus a single event in between."""
    _, headers = auth_headers(make_user(tenant_id=TENANT))
    colleague, colleague_headers = auth_headers(make_user(tenant_id=TENANT, name="Alex Wilber"))
    series = {
        "subject": "Daily", "showAs": "busy",
        "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
        "recurrence": {
            "pattern": {"type": "daily", "interval": 1},
            "range": {"type": "numbered", "startDate": "2030-01-07", "numberOfOccurrences": 3},
        },
    }  # fmt: skip
    resp = await client.post("/v1.0/me/events", json=series, headers=colleague_headers)
    assert resp.status == 201, await resp.text()
    master = await resp.json()
    window = "startDateTime=2030-01-07T00:00:00Z&endDateTime=2030-01-10T00:00:00Z"
    resp = await client.get(
        f"/v1.0/me/events/{master['id']}/instances?{window}", headers=colleague_headers
    )
    first, second, third = (await resp.json())["value"]
    assert first["start"]["dateTime"].startswith("2030-01-07T09:00")
    moved = {
        "subject": "Moved", "showAs": "oof",
        "start": {"dateTime": "2030-01-08T12:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-08T13:00:00", "timeZone": "UTC"},
    }  # fmt: skip
    resp = await client.patch(
        f"/v1.0/me/events/{second['id']}", json=moved, headers=colleague_headers
    )
    assert resp.status == 200, await resp.text()
    resp = await client.delete(f"/v1.0/me/events/{third['id']}", headers=colleague_headers)
    assert resp.status == 204
    await add_event(
        client, colleague_headers, "2030-01-08T15:00:00", "2030-01-08T15:30:00", "tentative", "1:1"
    )
    body = {
        **request_body(colleague.user_principal_name),
        "startTime": {"dateTime": "2030-01-07T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2030-01-10T00:00:00", "timeZone": "UTC"},
    }
    resp = await client.post("/v1.0/me/calendar/getSchedule", json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    (found,) = (await resp.json())["value"]
    seen = [
        (i["subject"], i["status"], i["start"]["dateTime"], i["end"]["dateTime"])
        for i in found["scheduleItems"]
    ]
    assert seen == [
        ("Daily", "busy", "2030-01-07T09:00:00.0000000", "2030-01-07T10:00:00.0000000"),
        ("Moved", "oof", "2030-01-08T12:00:00.0000000", "2030-01-08T13:00:00.0000000"),
        ("1:1", "tentative", "2030-01-08T15:00:00.0000000", "2030-01-08T15:30:00.0000000"),
    ]
    slots = ["0"] * 72  # hourly over three days
    slots[9], slots[24 + 12], slots[24 + 15] = "2", "3", "1"
    assert found["availabilityView"] == "".join(slots)  # nothing at 09:00 on the 8th or 9th


async def test_default_interval_and_validation(
    client: Client, auth_headers: Callable[..., Any], make_user: Callable[..., Any]
) -> None:
    me, headers = auth_headers(make_user(tenant_id=TENANT))
    resp = await client.post(
        "/v1.0/me/calendar/getSchedule",
        json=request_body(me.user_principal_name, interval=None),
        headers=headers,
    )
    assert (await resp.json())["value"][0]["availabilityView"] == "0" * 12  # 30-minute slots
    for bad in (
        request_body(me.user_principal_name, interval=4),
        request_body(me.user_principal_name, interval=1441),
        {**request_body(me.user_principal_name), "schedules": []},
        {"schedules": [me.user_principal_name]},
    ):
        resp = await client.post("/v1.0/me/calendar/getSchedule", json=bad, headers=headers)
        assert resp.status == 400, bad
    resp = await client.post(
        f"/v1.0/users/{me.id}/calendar/getSchedule",
        json=request_body(me.user_principal_name),
        headers=headers,
    )
    assert resp.status == 200


async def test_personal_accounts_are_not_supported(
    client: Client, auth_headers: Callable[..., Any], make_user: Callable[..., Any]
) -> None:
    me, headers = auth_headers(make_user(tenant_id=PERSONAL_TENANT_ID))
    resp = await client.post(
        "/v1.0/me/calendar/getSchedule",
        json=request_body(me.user_principal_name),
        headers=headers,
    )
    assert resp.status == 400
    assert "personal" in (await resp.json())["error"]["message"]


def test_availability_view_takes_the_strongest_status_per_slot() -> None:
    def at(hour: int, minute: int = 0) -> datetime:
        return datetime(2030, 1, 7, hour, minute, tzinfo=UTC)

    items = [
        BusyInstance(at(9), at(9, 15), "tentative", "", "", False),
        BusyInstance(at(9, 10), at(9, 20), "workingElsewhere", "", "", False),
        BusyInstance(at(10), at(10, 5), "free", "", "", False),
    ]
    assert availability_view(items, at(9), at(10, 30), 30) == "400"
