"""Load generators for ``emulator_bench.py``: seeding, GET loops, delta rounds, notifications.

Every loop runs 4 clients per token (Outlook's per app + mailbox concurrency) and records the
HTTP statuses, so a throttled (429) run shows up in the figures instead of being hidden.
"""

from __future__ import annotations

import asyncio
import gc
import random
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

CONCURRENCY = 4  # Outlook's per app + mailbox limit
YEAR = datetime(2024, 1, 1, tzinfo=UTC)
FMT = "%Y-%m-%dT%H:%M:%S"


def bench_users(count: int, tenant: str) -> list[dict[str, str]]:
    """``count`` emulator users of one tenant (``User`` fields), named u0, u1, ..."""
    return [
        {
            "id": str(uuid.uuid4()),
            "tenant_id": tenant,
            "user_principal_name": f"u{n}@bench.example",
            "display_name": f"User {n}",
        }
        for n in range(count)
    ]


async def wait_ready(session: aiohttp.ClientSession, url: str, timeout_s: float = 10.0) -> None:
    """Until ``url`` answers 200 (a child process starting, and seeding)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            async with session.get(url) as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)  # process start-up, not a readiness guess inside a test
    raise RuntimeError(f"{url} did not answer in {timeout_s:g} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_calendar(state: Any, user: Any, events: int, series: int) -> int:
    """``events`` stored events in the user's default calendar over 2024, ``series`` of them
    recurring (daily, weekly on two days, monthly); the rest single 30-90 minute meetings."""
    from msgraph_emulator.mailbox.parse import parse_event
    from msgraph_emulator.mailbox.writes import create_event

    rng = random.Random(user.id)
    mb = state.mailboxes.ensure(user)
    cal = mb.default_calendar()
    patterns = [
        {"type": "daily"},
        {"type": "weekly", "daysOfWeek": ["tuesday", "thursday"]},
        {"type": "weekly", "daysOfWeek": ["monday"]},
        {"type": "absoluteMonthly", "dayOfMonth": 15},
    ]
    for n in range(events):
        start = YEAR + timedelta(minutes=rng.randrange(0, 365 * 24 * 4) * 15)
        end = start + timedelta(minutes=rng.choice([30, 60, 90]))
        body: dict[str, Any] = {
            "subject": f"Meeting {n}",
            "start": {"dateTime": start.strftime(FMT), "timeZone": "UTC"},
            "end": {"dateTime": end.strftime(FMT), "timeZone": "UTC"},
        }
        if n < series:
            body["recurrence"] = {
                "pattern": patterns[n % len(patterns)],
                "range": {"type": "noEnd", "startDate": start.date().isoformat()},
            }
        create_event(mb, cal, parse_event(body), lambda *_: None)
    return len(mb.by_calendar[cal.id])


def window_query(rng: random.Random, days: int) -> str:
    lo = YEAR + timedelta(days=rng.randrange(30, 330))
    hi = lo + timedelta(days=days)
    return f"startDateTime={lo.strftime(FMT)}Z&endDateTime={hi.strftime(FMT)}Z"


def _figures(counts: dict[int, int], elapsed: float, tokens: int) -> dict[str, Any]:
    total = sum(counts.values())
    return {
        "requests": total,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(total / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(counts.items())},
        "concurrency": tokens * CONCURRENCY,
    }


async def get_load(
    session: aiohttp.ClientSession,
    tokens: list[str],
    seconds: float,
    url: Callable[[random.Random], str],
    prefer: str = "",
) -> dict[str, Any]:
    """GET ``url(rng)`` in a loop from 4 clients per token for ``seconds``."""
    deadline = time.perf_counter() + seconds
    counts: dict[int, int] = {}

    async def worker(token: str, seed: int) -> None:
        rng = random.Random(seed)
        headers = {"Authorization": f"Bearer {token}"} | ({"Prefer": prefer} if prefer else {})
        while time.perf_counter() < deadline:
            async with session.get(url(rng), headers=headers) as r:
                await r.read()
                counts[r.status] = counts.get(r.status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(
        *(worker(t, i * CONCURRENCY + k) for i, t in enumerate(tokens) for k in range(CONCURRENCY))
    )
    return _figures(counts, time.perf_counter() - started, len(tokens))


async def delta_load(
    session: aiohttp.ClientSession,
    base: str,
    tokens: list[str],
    seconds: float,
    days: int,
    page: int,
) -> dict[str, Any]:
    """Full initial delta rounds (first request, every nextLink, until the deltaLink)."""
    deadline = time.perf_counter() + seconds
    counts: dict[int, int] = {}
    rounds, items = 0, 0

    async def worker(token: str, seed: int) -> None:
        nonlocal rounds, items
        rng = random.Random(seed)
        headers = {"Authorization": f"Bearer {token}", "Prefer": f"odata.maxpagesize={page}"}
        while time.perf_counter() < deadline:
            url: str | None = f"{base}/v1.0/me/calendarView/delta?{window_query(rng, days)}"
            while url is not None:
                async with session.get(url, headers=headers) as r:
                    body = await r.json()
                    counts[r.status] = counts.get(r.status, 0) + 1
                if r.status != 200:
                    break
                items += len(body["value"])
                url = body.get("@odata.nextLink")
            else:
                rounds += 1

    started = time.perf_counter()
    await asyncio.gather(
        *(worker(t, i * CONCURRENCY + k) for i, t in enumerate(tokens) for k in range(CONCURRENCY))
    )
    elapsed = time.perf_counter() - started
    figures = _figures(counts, elapsed, len(tokens))
    figures |= {"rounds": rounds, "rounds_per_s": round(rounds / elapsed, 1)}
    figures["items_per_round"] = round(items / max(rounds, 1), 1)
    return figures


async def notification_load(
    session: aiohttp.ClientSession, base: str, tokens: list[str], changes: int
) -> dict[str, Any]:
    """One ``/me/events`` subscription per user; the child emits ``changes`` changes and we
    time until the local receiver has them all."""
    received = posts = 0
    done = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        nonlocal received, posts
        token = request.query.get("validationToken")
        if token is not None:
            return web.Response(text=token, content_type="text/plain")
        body = await request.json()
        received += len(body["value"])
        posts += 1
        if received >= changes:
            done.set()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        expiry = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        for token in tokens:
            sub = {
                "changeType": "updated",
                "notificationUrl": f"http://127.0.0.1:{port}/hook",
                "resource": "/me/events",
                "expirationDateTime": expiry,
                "clientState": "b",
            }
            async with session.post(
                f"{base}/v1.0/subscriptions", json=sub, headers={"Authorization": f"Bearer {token}"}
            ) as r:
                assert r.status == 201, await r.text()
        started = time.perf_counter()
        async with session.post(f"{base}/_bench/emit", params={"n": str(changes)}) as r:
            assert r.status == 200
        await asyncio.wait_for(done.wait(), timeout=120)
        elapsed = time.perf_counter() - started
    finally:
        await runner.cleanup()
    return {
        "notifications": received,
        "posts": posts,
        "seconds": round(elapsed, 3),
        "notifications_per_s": round(received / elapsed, 1),
    }


class FullGcPauses:
    """Server side (the bench child): times every full (generation 2) collection from now on;
    ``report`` is the ``GET /_bench/gc`` handler."""

    def __init__(self, frozen: bool) -> None:
        self.frozen = frozen
        self.pauses: list[float] = []
        self._began = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._began)

    async def report(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "freeze": self.frozen,
                "frozen_objects": gc.get_freeze_count(),
                "full_collections": len(self.pauses),
                "full_pause_ms_total": round(sum(self.pauses) * 1000, 1),
                "full_pause_ms_max": round(max(self.pauses, default=0.0) * 1000, 1),
            }
        )
