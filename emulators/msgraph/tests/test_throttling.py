"""Outlook throttling per app + mailbox, and injected request faults."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from msgraph_emulator.notify.limits import MailboxLimiter
from msgraph_emulator.state import EmulatorState

Client = TestClient  # type: ignore[type-arg]


async def test_fifth_concurrent_request_gets_application_throttled(
    client: Client, auth_headers: Callable[..., Any]
) -> None:
    user, headers = auth_headers(client_id="app-1")
    _, other_app = auth_headers(user, client_id="app-2")
    await client.put(f"/_emulator/faults/users/{user.id}", json={"latency_ms": 300})

    async def get(h: dict[str, str]) -> tuple[int, dict[str, Any], str | None]:
        resp = await client.get("/v1.0/subscriptions", headers=h)
        return resp.status, await resp.json(), resp.headers.get("Retry-After")

    results = await asyncio.gather(*(get(headers) for _ in range(5)), get(other_app))
    statuses = sorted(r[0] for r in results)
    assert statuses == [200, 200, 200, 200, 200, 429]
    throttled = next(r for r in results if r[0] == 429)
    assert throttled[1]["error"]["code"] == "ApplicationThrottled"
    assert throttled[1]["error"]["message"] == "Application is over its MailboxConcurrency limit."
    assert throttled[2] is not None
    assert int(throttled[2]) >= 1


async def test_requests_per_ten_minutes_sliding_window(
    client: Client, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    now = [1000.0]
    limiter = state.subscriptions.limiter
    limiter.requests_per_window = 3
    limiter.clock = lambda: now[0]
    _, headers = auth_headers()
    _, other_user = auth_headers()
    for _ in range(3):
        assert (await client.get("/v1.0/subscriptions", headers=headers)).status == 200
        now[0] += 100
    resp = await client.get("/v1.0/subscriptions", headers=headers)
    assert resp.status == 429
    error = (await resp.json())["error"]
    assert (error["code"], error["message"]) == ("TooManyRequests", "Please retry again later.")
    assert resp.headers["Retry-After"] == "400"  # the first two requests must age out
    assert (await client.get("/v1.0/subscriptions", headers=other_user)).status == 200
    now[0] += 400
    assert (await client.get("/v1.0/subscriptions", headers=headers)).status == 200


async def test_throttling_can_be_switched_off_and_errors_injected(
    client: Client, auth_headers: Callable[..., Any], state: EmulatorState
) -> None:
    state.subscriptions.limiter.requests_per_window = 2
    user, headers = auth_headers()
    await client.put(f"/_emulator/faults/users/{user.id}", json={"throttling": False})
    for _ in range(5):
        assert (await client.get("/v1.0/subscriptions", headers=headers)).status == 200
    await client.put(
        f"/_emulator/faults/users/{user.id}", json={"error_rate": 1.0, "throttling": False}
    )
    resp = await client.get("/v1.0/subscriptions", headers=headers)
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "serviceNotAvailable"
    assert resp.headers["Retry-After"] == "1"
    await client.delete(f"/_emulator/faults/users/{user.id}")
    assert (await client.post("/_emulator/faults/throttling/reset")).status == 204
    assert (await client.get("/v1.0/subscriptions", headers=headers)).status == 200


async def test_unauthenticated_requests_are_not_counted(
    client: Client, state: EmulatorState
) -> None:
    resp = await client.get("/v1.0/subscriptions")
    assert resp.status == 401
    assert state.subscriptions.limiter.recent == {}


def test_limiter_releases_and_counts_rejections() -> None:
    now = [0.0]
    limiter = MailboxLimiter(concurrency=1, requests_per_window=10, clock=lambda: now[0])
    key = ("app", "user")
    assert limiter.acquire(key).admitted
    busy = limiter.acquire(key)
    assert (busy.code, busy.admitted) == ("ApplicationThrottled", False)
    limiter.release(key)
    assert limiter.acquire(key).admitted
    limiter.release(key)
    assert limiter.active == {}
    assert len(limiter.recent[key]) == 3  # the rejected request accrued too
