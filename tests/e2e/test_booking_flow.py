"""End to end through every service: an Outlook calendar connected, its busy time blocking a
booking, the booking written back to Outlook once, and a move in Outlook rescheduling it.

The processes `make up` runs (the Graph emulator, the connector, the sync-worker, the
availability service), each service on a database of its own, wired to each other by URL as in
production, on the real Kafka and PostgreSQL. The test drives them only through their public
APIs and the emulator's control API (what a user would do in Outlook).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from calsync_common.http.auth import AuthSettings, mint

if TYPE_CHECKING:
    from conftest import Databases

pytestmark = pytest.mark.e2e
SUB_ACCOUNT = "sa-e2e"
MEMBER = "u-e2e"
FMT = "%Y-%m-%dT%H:%M:%S"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[str(a["name"])] = a.get("value") or ""


@dataclass
class Stack:
    http: aiohttp.ClientSession
    tls: ssl.SSLContext
    emulator: str
    connector: str
    availability: str
    user_id: str
    upn: str

    async def call(
        self, method: str, url: str, *, token: str | None = None, body: Any = None, **kw: Any
    ) -> tuple[int, Any, Any]:
        headers = dict(kw.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        ssl_ctx = self.tls if url.startswith("https") else None
        async with self.http.request(
            method, url, json=body, headers=headers, ssl=ssl_ctx, **kw
        ) as resp:
            data = await resp.json(content_type=None) if resp.status != 204 else None
            return resp.status, data, resp.headers

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        status, data, _ = await self.call(method, f"{self.emulator}{path}", body=body)
        assert status < 300, (status, data)
        return data


async def _ready(http: aiohttp.ClientSession, url: str, proc: Any, tls: ssl.SSLContext) -> None:
    async with asyncio.timeout(90):
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"{url} exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url, ssl=tls if url.startswith("https") else None) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.2)  # polling readiness, bounded by the timeout


async def _spawn(module: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    handle = log.open("wb")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, env=env, stdout=handle, stderr=handle
        )
    finally:
        handle.close()


@pytest.fixture
async def stack(
    infra: Any, databases: Databases, tmp_path: Path, topic_prefix: str
) -> AsyncIterator[Stack]:
    base_env = {
        k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }
    base_env |= {
        "CALSYNC_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "CALSYNC_TOPIC_PREFIX": topic_prefix,
    }
    ports = {name: free_port() for name in ("emulator", "connector", "sync-worker", "availability")}
    emulator = f"https://127.0.0.1:{ports['emulator']}"
    ca = tmp_path / "msgraph" / "ca.pem"
    procs: list[asyncio.subprocess.Process] = []
    async with contextlib.AsyncExitStack() as stack:
        dsn = {
            name: await stack.enter_async_context(databases.throwaway())
            for name in ("connector", "sync-worker", "availability")
        }
        http = await stack.enter_async_context(aiohttp.ClientSession())
        try:
            procs.append(
                await _spawn(
                    "msgraph_emulator",
                    base_env
                    | {
                        "MSGRAPH_EMU_PORT": str(ports["emulator"]),
                        "MSGRAPH_EMU_DATA_DIR": str(tmp_path / "msgraph"),
                    },
                    tmp_path / "msgraph.log",
                )
            )
            async with asyncio.timeout(60):
                while not ca.exists():  # noqa: ASYNC110 (the emulator writes it at start)
                    await asyncio.sleep(0.1)
            tls = ssl.create_default_context(cafile=str(ca))
            await _ready(http, f"{emulator}/readyz", procs[0], tls)
            connector = f"http://127.0.0.1:{ports['connector']}"
            setup = Stack(http, tls, emulator, connector, "", "", "")
            app = await setup.control(
                "POST",
                "/_emulator/identity/apps",
                {"displayName": "calsync e2e", "redirectUris": [f"{connector}/oauth/callback"]},
            )
            upn = f"e2e{uuid.uuid4().hex[:8]}@fabrikam.example"
            user = await setup.control(
                "POST",
                "/_emulator/users",
                {"kind": "work", "userPrincipalName": upn, "displayName": "E2E", "timeZone": "UTC"},
            )
            graph = {"url": f"{emulator}/v1.0", "ca": str(ca)}
            envs = {
                "calsync_connector": {
                    "CONNECTOR_DATABASE_URL": dsn["connector"],
                    "CONNECTOR_HTTP__PORT": str(ports["connector"]),
                    "CONNECTOR_PUBLIC_URL": connector,
                    "CONNECTOR_MICROSOFT__AUTHORITY": f"{emulator}/common",
                    "CONNECTOR_MICROSOFT__GRAPH_URL": graph["url"],
                    "CONNECTOR_MICROSOFT__CA_BUNDLE": graph["ca"],
                    "CONNECTOR_MICROSOFT__CLIENT_ID": app["clientId"],
                    "CONNECTOR_MICROSOFT__CLIENT_SECRET": app["clientSecret"],
                },
                "calsync_sync_worker": {
                    "SYNC_WORKER_DATABASE_URL": dsn["sync-worker"],
                    "SYNC_WORKER_HTTP__PORT": str(ports["sync-worker"]),
                    "SYNC_WORKER_PUBLIC_URL": f"http://127.0.0.1:{ports['sync-worker']}",
                    "SYNC_WORKER_GRAPH__GRAPH_URL": graph["url"],
                    "SYNC_WORKER_GRAPH__CA_BUNDLE": graph["ca"],
                    "SYNC_WORKER_GRAPH__CONNECTOR_URL": connector,
                    "SYNC_WORKER_DELTA_EVERY_S": "0.2",
                    "SYNC_WORKER_SUBSCRIPTIONS_EVERY_S": "0.5",
                    "SYNC_WORKER_WRITE_BACK_EVERY_S": "0.2",
                },
                "calsync_availability": {
                    "AVAILABILITY_DATABASE_URL": dsn["availability"],
                    "AVAILABILITY_HTTP__PORT": str(ports["availability"]),
                },
            }
            for module, env in envs.items():
                procs.append(await _spawn(module, base_env | env, tmp_path / f"{module}.log"))
            for port, proc in zip(
                (ports["connector"], ports["sync-worker"], ports["availability"]),
                procs[1:],
                strict=True,
            ):
                await _ready(http, f"http://127.0.0.1:{port}/readyz", proc, tls)
            yield Stack(
                http,
                tls,
                emulator,
                connector,
                f"http://127.0.0.1:{ports['availability']}",
                user["id"],
                upn,
            )
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()


async def eventually(check: Callable[[], Awaitable[Any]], timeout_s: float = 60) -> Any:
    """Poll until ``check`` returns something truthy; that value."""
    async with asyncio.timeout(timeout_s):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.25)


async def connect(s: Stack) -> dict[str, Any]:
    """What a person does in the browser: sign in and consent, back to the connector."""
    token = mint(AuthSettings.development(), subject="e2e", sub_account_id=SUB_ACCOUNT)
    status, started, _ = await s.call(
        "POST",
        f"{s.connector}/v1/sub-accounts/{SUB_ACCOUNT}/users/{MEMBER}/connections/outlook",
        token=token,
        body={"return_url": "http://localhost:3000/settings/calendars"},
    )
    assert status == 201, started
    page = f"{started['authorization_url']}&{urlencode({'x-emulator-user': s.upn})}"
    async with s.http.get(page, ssl=s.tls) as resp:
        assert resp.status == 200, await resp.text()
        form = _Form()
        form.feed(await resp.text())
    async with s.http.post(
        f"{s.connector}/oauth/callback", data=form.fields, allow_redirects=False
    ) as resp:
        location = resp.headers["Location"]
    connection_id = parse_qs(urlsplit(location).query)["outlook_connection_id"][0]
    status, connection, headers = await s.call(
        "GET",
        f"{s.connector}/v1/sub-accounts/{SUB_ACCOUNT}/connections/{connection_id}",
        token=token,
    )
    assert status == 200, connection
    calendar = connection["default_calendar_id"]
    status, body, _ = await s.call(
        "PUT",
        f"{s.connector}/v1/sub-accounts/{SUB_ACCOUNT}/connections/{connection_id}/settings",
        token=token,
        body={
            "linked_calendar_id": calendar,
            "conflict_calendar_ids": [calendar],
            "sync_preference": "two_way",
            "blocking_show_as": ["busy"],
        },
        headers={"If-Match": headers["ETag"]},
    )
    assert status == 200, body
    return body


def _at(hours: int) -> datetime:
    day = (datetime.now(UTC) + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(hours=hours)


async def test_outlook_blocks_a_booking_which_is_written_back_once_and_follows_a_move(
    stack: Stack,
) -> None:
    s = stack
    connection = await connect(s)
    calendar = connection["default_calendar_id"]
    av = mint(
        AuthSettings.development(audience="calsync-availability"),
        subject="e2e",
        sub_account_id=SUB_ACCOUNT,
    )
    base = f"{s.availability}/v1/sub-accounts/{SUB_ACCOUNT}"

    # The person is busy in Outlook 10:00-11:00; availability learns it through every hop.
    await s.control(
        "POST",
        f"/_emulator/users/{s.user_id}/calendars/{calendar}/events",
        {
            "subject": "Dentist",
            "start": {"dateTime": _at(10).strftime(FMT), "timeZone": "UTC"},
            "end": {"dateTime": _at(11).strftime(FMT), "timeZone": "UTC"},
            "showAs": "busy",
        },
    )
    window = {"start": _at(0).isoformat(), "end": _at(24).isoformat()}

    async def busy() -> list[dict[str, Any]]:
        status, body, _ = await s.call(
            "GET", f"{base}/users/{MEMBER}/busy", token=av, params=window
        )
        assert status == 200, body
        return list(body["busy"])

    async def outlook_busy() -> list[dict[str, Any]]:
        return [i for i in await busy() if i["source"] == "outlook"]

    (dentist,) = await eventually(outlook_busy)
    assert datetime.fromisoformat(dentist["start"]) == _at(10)
    assert "subject" not in dentist and "title" not in dentist  # never private details

    status, cal, _ = await s.call(
        "POST",
        f"{base}/calendars",
        token=av,
        body={
            "name": "Intro calls",
            "type": "personal",
            "slot_minutes": 30,
            "on_stale": "proceed",
            "members": [
                {
                    "user_id": MEMBER,
                    "time_zone": "UTC",
                    "working_hours": [
                        {"day": d, "start": "00:00", "end": "24:00"}
                        for d in (
                            "monday",
                            "tuesday",
                            "wednesday",
                            "thursday",
                            "friday",
                            "saturday",
                            "sunday",
                        )
                    ],
                }
            ],
        },
    )
    assert status == 201, cal

    async def book(hour: int, key: str) -> tuple[int, Any]:
        status, body, _ = await s.call(
            "POST",
            f"{base}/bookings",
            token=av,
            body={
                "booking_calendar_id": cal["id"],
                "start": _at(hour).isoformat(),
                "end": (_at(hour) + timedelta(minutes=30)).isoformat(),
                "title": "Intro call",
            },
            headers={"Idempotency-Key": key},
        )
        return status, body

    status, refused = await book(10, "k-1")
    assert (status, refused["code"]) == (409, "slot_unavailable"), refused
    status, booking = await book(13, "k-2")
    assert status == 201, booking
    booking_id = booking["id"]

    # Written back to the Linked Calendar exactly once, and the booking says so.
    async def written() -> dict[str, Any] | None:
        status, body, _ = await s.call("GET", f"{base}/bookings/{booking_id}", token=av)
        assert status == 200, body
        outcome = body["members"][0]["write_back"]
        return body if outcome and outcome["outcome"] == "written" else None

    await eventually(written)
    truth = await s.control(
        "GET",
        f"/_emulator/users/{s.user_id}/calendars/{calendar}/busy?"
        f"start={_at(0).strftime(FMT)}Z&end={_at(24).strftime(FMT)}Z",
    )
    booked = [i for i in truth["instances"] if i["subject"] == "Intro call"]
    assert len(booked) == 1
    assert datetime.fromisoformat(booked[0]["start"]) == _at(13)

    # Its echo comes back through delta and blocks nothing a second time.
    async def echo_settled() -> bool:
        intervals = await busy()
        at_13 = [i for i in intervals if datetime.fromisoformat(i["start"]) == _at(13)]
        return len(at_13) == 1 and at_13[0]["source"] == "booking"

    await eventually(echo_settled)

    # Two-way: the person drags the event to 15:00 in Outlook; the booking follows.
    await s.control(
        "PATCH",
        f"/_emulator/users/{s.user_id}/events/{booked[0]['id']}",
        {
            "start": {"dateTime": _at(15).strftime(FMT), "timeZone": "UTC"},
            "end": {"dateTime": (_at(15) + timedelta(minutes=30)).strftime(FMT), "timeZone": "UTC"},
        },
    )

    async def rescheduled() -> dict[str, Any] | None:
        status, body, _ = await s.call("GET", f"{base}/bookings/{booking_id}", token=av)
        assert status == 200, body
        return body if datetime.fromisoformat(body["start"]) == _at(15) else None

    moved = await eventually(rescheduled)
    assert moved["changed_by"] == "outlook"
    assert moved["version"] == 2
