"""``POST /v1.0/$batch``: limits, correlation, dependsOn, per-request throttling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from msgraph_emulator.state import EmulatorState

Client = TestClient  # type: ignore[type-arg]
CLIENT = "11111111-2222-3333-4444-555555555555"  # token_for's default client id


def by_id(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in payload["responses"]}


async def test_batch_runs_inner_requests_and_correlates_by_id(
    client: Client, auth_headers: Callable[..., Any]
) -> None:
    _, headers = auth_headers()
    batch = {"requests": [
        {"id": "1", "method": "GET", "url": "/me/calendars"},
        {"id": "2", "method": "GET", "url": "subscriptions"},
        {"id": "3", "method": "GET", "url": "/me/nothing-here"},
    ]}  # fmt: skip
    resp = await client.post("/v1.0/$batch", json=batch, headers=headers)
    assert resp.status == 200
    got = by_id(await resp.json())
    assert got["1"]["status"] == 200
    assert got["1"]["body"]["value"][0]["isDefaultCalendar"]
    assert got["1"]["headers"]["Content-Type"].startswith("application/json")
    assert got["2"]["status"] == 200
    assert got["2"]["body"]["value"] == []
    assert got["3"]["status"] >= 400


async def test_batch_limits_and_malformed_bodies(
    client: Client, auth_headers: Callable[..., Any]
) -> None:
    _, headers = auth_headers()
    too_many = {"requests": [
        {"id": str(n), "method": "GET", "url": "/me/calendars"} for n in range(21)
    ]}  # fmt: skip
    resp = await client.post("/v1.0/$batch", json=too_many, headers=headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "BadRequest"
    for bad in (
        {"requests": []},
        {"nope": 1},
        {
            "requests": [
                {"id": "1", "method": "GET", "url": "/me"},
                {"id": "1", "method": "GET", "url": "/me"},
            ]
        },
        {"requests": [{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["9"]}]},
        {"requests": [{"id": "1", "method": "TRACE", "url": "/me"}]},
    ):
        resp = await client.post("/v1.0/$batch", json=bad, headers=headers)
        assert resp.status == 400, bad
    assert (await client.post("/v1.0/$batch", json={"requests": []})).status == 401


async def test_failed_dependency_gives_424(
    client: Client, auth_headers: Callable[..., Any]
) -> None:
    _, headers = auth_headers()
    batch = {"requests": [
        {"id": "a", "method": "GET", "url": "/me/calendars/not-a-calendar"},
        {"id": "b", "method": "GET", "url": "/me/calendars", "dependsOn": ["a"]},
        {"id": "c", "method": "GET", "url": "/me/calendars"},
        {"id": "d", "method": "GET", "url": "/me/calendars", "dependsOn": ["c"]},
    ]}  # fmt: skip
    got = by_id(await (await client.post("/v1.0/$batch", json=batch, headers=headers)).json())
    assert got["a"]["status"] >= 400
    assert got["b"]["status"] == 424
    assert got["b"]["body"]["error"]["code"] == "FailedDependency"
    assert (got["c"]["status"], got["d"]["status"]) == (200, 200)


async def test_inner_post_needs_content_type_and_is_executed(
    client: Client, auth_headers: Callable[..., Any]
) -> None:
    _, headers = auth_headers()
    event = {
        "subject": "From batch",
        "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
    }
    batch = {"requests": [
        {"id": "1", "method": "POST", "url": "/me/events", "body": event},
        {"id": "2", "method": "POST", "url": "/me/events", "body": event,
         "headers": {"Content-Type": "application/json"}},
    ]}  # fmt: skip
    got = by_id(await (await client.post("/v1.0/$batch", json=batch, headers=headers)).json())
    assert got["1"]["status"] == 400
    assert got["2"]["status"] == 201
    assert got["2"]["body"]["subject"] == "From batch"


async def test_batch_sends_at_most_four_at_a_time_and_inner_requests_are_throttled(
    client: Client, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    user, headers = auth_headers()
    await client.put(f"/_emulator/faults/users/{user.id}", json={"latency_ms": 50})
    batch = {"requests": [
        {"id": str(n), "method": "GET", "url": "/me/calendars"} for n in range(12)
    ]}  # fmt: skip
    got = by_id(await (await client.post("/v1.0/$batch", json=batch, headers=headers)).json())
    assert {r["status"] for r in got.values()} == {200}  # a 5th concurrent one would be 429
    # Four requests of the same app already in flight for the mailbox: inner requests get 429.
    state.subscriptions.limiter.active[(CLIENT, user.id)] = 4
    got = by_id(await (await client.post("/v1.0/$batch", json=batch, headers=headers)).json())
    assert {r["status"] for r in got.values()} == {429}
    assert got["0"]["body"]["error"]["code"] == "ApplicationThrottled"
    assert "Retry-After" in got["0"]["headers"]
