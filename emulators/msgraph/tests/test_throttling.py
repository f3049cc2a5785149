"""Outlook throttling per app + mailbox, and injected request faults."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from msgraph_emulator.notify.limits import MailboxLimiter
from msgraph_emulator.state import EmulatorState
from msgraph_emulator.users import User, UserRegistry

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


async def test_delegates_share_the_owners_mailbox_budget(
    client: Client,
    auth_headers: Callable[..., Any],
    make_user: Callable[..., User],
    state: EmulatorState,
) -> None:
    """Outlook counts per app + mailbox: two signed-in users calling one shared mailbox share
    its 4-request concurrency; the delegate's own mailbox keeps its own budget."""
    tenant = str(uuid.uuid4())
    owner = make_user(tenant_id=tenant)
    share = {
        "name": "Adele's calendar",
        "access": "read",
        "owner": {"name": owner.display_name, "address": owner.user_principal_name},
    }
    delegates = [make_user(tenant_id=tenant, name=n) for n in ("Megan Bowen", "Alex Wilber")]
    headers = []
    for delegate in delegates:
        resp = await client.post(f"/_emulator/users/{delegate.id}/calendars", json=share)
        assert resp.status == 201
        scopes = ("Calendars.Read", "Calendars.Read.Shared")
        headers.append(auth_headers(delegate, scopes=scopes, client_id="app-1")[1])
    await client.put(f"/_emulator/faults/users/{owner.id}", json={"latency_ms": 300})
    refs = (owner.id, owner.user_principal_name.upper())  # id or UPN, any case

    async def get(h: dict[str, str], path: str) -> tuple[int, dict[str, Any]]:
        resp = await client.get(path, headers=h)
        return resp.status, await resp.json()

    own = get(headers[0], "/v1.0/me/calendar")
    shared = [get(headers[i % 2], f"/v1.0/users/{refs[i % 2]}/calendar") for i in range(6)]
    results = await asyncio.gather(own, *shared)
    assert results[0][0] == 200
    assert sorted(status for status, _ in results[1:]) == [200, 200, 200, 200, 429, 429]
    throttled = {body["error"]["code"] for status, body in results[1:] if status == 429}
    assert throttled == {"ApplicationThrottled"}
    recent = state.subscriptions.limiter.recent
    assert set(recent) == {("app-1", owner.id), ("app-1", delegates[0].id)}
    assert len(recent[("app-1", owner.id)]) == 6


async def test_unknown_or_foreign_user_counts_against_the_caller(
    client: Client,
    auth_headers: Callable[..., Any],
    make_user: Callable[..., User],
    state: EmulatorState,
) -> None:
    caller, headers = auth_headers(client_id="app-2")
    foreign = make_user()  # another tenant: Graph can't resolve it from the caller's
    for ref in ("nobody@contoso.example", foreign.id):
        resp = await client.get(f"/v1.0/users/{ref}/calendar", headers=headers)
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "ErrorInvalidUser"
    recent = state.subscriptions.limiter.recent
    assert list(recent) == [("app-2", caller.id)]
    assert len(recent[("app-2", caller.id)]) == 2


def test_upn_index_follows_adds_replacements_and_reset() -> None:
    users = UserRegistry()
    adele = users.add(User("id-1", "t", "Adele@Contoso.example", "Adele"))
    assert users.by_upn("adele@contoso.EXAMPLE") is adele
    renamed = users.add(User("id-1", "t", "adele.v@contoso.example", "Adele"))
    assert users.by_upn("adele@contoso.example") is None
    assert users.by_upn("ADELE.V@contoso.example") is renamed
    users.reset()
    assert users.by_upn("adele.v@contoso.example") is None


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


@pytest.mark.parametrize(
    ("form", "seconds", "expected"),
    [("seconds", 1.2, "2"), ("fractional", 0.25, "0.25"), ("http-date", 2, "GMT")],
)
async def test_injected_throttling_says_retry_after_in_each_form_graph_uses(
    client: Client, auth_headers: Any, form: str, seconds: float, expected: str
) -> None:
    user, headers = auth_headers()
    await client.put(
        f"/_emulator/faults/users/{user.id}",
        json={"throttle_rate": 1.0, "retry_after_s": seconds, "retry_after_form": form},
    )
    resp = await client.get("/v1.0/subscriptions", headers=headers)
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "TooManyRequests"
    value = resp.headers["Retry-After"]
    if form == "http-date":
        at = parsedate_to_datetime(value)
        assert value.endswith(" GMT")
        assert timedelta(0) < at - datetime.now(UTC) <= timedelta(seconds=seconds + 1)
    else:
        assert value == expected
    bad = await client.put("/_emulator/faults", json={"retry_after_form": "minutes"})
    assert bad.status == 400


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
