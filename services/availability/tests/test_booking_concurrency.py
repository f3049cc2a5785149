"""Never a double booking, under load, over HTTP on a real port (real PostgreSQL and Kafka).

* 1,000 simultaneous attempts on one slot, each with its own Idempotency-Key: exactly one 201,
  999 clean ``409 slot_unavailable``, no 5xx.
* A seeded randomised run: concurrent bookings (personal, round robin, collective), reschedules
  and cancellations over HTTP, interleaved with Outlook events published to the calendar-events
  topic and applied by the running projection. Checked by SQL, not by trusting the service:
  no two confirmed bookings of a member overlap (self-join), and every overlap of a confirmed
  booking with blocking Outlook time is an open recorded conflict and vice versa (a booking
  confirmed over Outlook time the projection already held would be an overlap without one).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiokafka.structs import RecordMetadata

from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.calendar_events import CalendarEventRemoved, CalendarEventUpserted
from calsync_common.contracts.envelope import encode
from calsync_common.kafka.producer import EventPublisher
from calsync_common.runtime import PUBLISHER
from calsync_common.testing import eventually

from .bookings_harness import OVERLAPS, Harness, Member, at, serve, settings_for

pytestmark = pytest.mark.integration

ATTEMPTS = 1000
SEED = 20261201
WORKERS = 24
OPS_PER_WORKER = 25
#: The randomised run books into these hourly slots of one day, so nearly everything contends.
HOURS = 10
PROJECTION_GROUP = "availability-projections-calendar-events"


@pytest.fixture
async def h(infra: Any, fresh_database: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async for harness in serve(settings_for(infra.kafka_bootstrap, fresh_database, topic_prefix)):
        yield harness


@pytest.fixture
async def http(h: Harness) -> AsyncIterator[aiohttp.ClientSession]:
    """A client of the served port with room for every attempt at once."""
    connector = aiohttp.TCPConnector(limit=ATTEMPTS + 50)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(
        str(h.client.make_url("")), connector=connector, timeout=timeout
    ) as session:
        yield session


async def test_one_slot_a_thousand_attempts_one_booking(
    h: Harness, http: aiohttp.ClientSession
) -> None:
    await h.member("ann")
    cal = await h.calendar("personal", ["ann"])
    body = {
        "booking_calendar_id": cal,
        "start": at(9).isoformat(),
        "end": at(10).isoformat(),
        "title": "Intro call",
    }
    start = asyncio.Event()

    async def attempt(n: int) -> tuple[int, str, Any]:
        await start.wait()
        async with http.post(
            f"/v1/sub-accounts/{h.sub}/bookings",
            json=body,
            headers=h.headers(f"attempt-{n}-{uuid.uuid4().hex}"),
        ) as resp:
            return resp.status, resp.content_type, await resp.json()

    tasks = [asyncio.create_task(attempt(n)) for n in range(ATTEMPTS)]
    await asyncio.sleep(0)  # every task waits on the event: released together
    start.set()
    results = await asyncio.gather(*tasks)

    statuses = Counter(status for status, _, _ in results)
    assert statuses == {201: 1, 409: ATTEMPTS - 1}, statuses
    refused = [(ct, b["code"]) for status, ct, b in results if status == 409]
    assert set(refused) == {("application/problem+json", "slot_unavailable")}
    [booked] = [b for status, _, b in results if status == 201]
    for status, _, b in results:
        if status == 409:  # the winner is named as the conflict (its source only)
            assert b["conflicts"] == [
                {"user_id": "ann", "start": at(9).isoformat(), "end": at(10).isoformat(),
                 "source": "booking"}
            ]  # fmt: skip
    rows = await h.pool.fetch("SELECT booking_id, status FROM bookings")
    assert [(str(r["booking_id"]), r["status"]) for r in rows] == [(booked["id"], "confirmed")]
    assert await h.pool.fetchval("SELECT count(*) FROM idempotency_keys") == ATTEMPTS


# --- the randomised run ------------------------------------------------------------------------


@dataclass
class Outlook:
    """Publishes a member's Outlook events as the sync-worker would: per-calendar sequences."""

    publisher: EventPublisher
    member: Member
    sequence: int = 1000
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    records: list[RecordMetadata] = field(default_factory=list)

    async def send(self, payload: EventPayload) -> None:
        async with self.lock:  # sequence order is send order
            self.sequence += 1
            message = encode(
                payload, source="/calsync/sync-worker", event_id=str(uuid.uuid4()),
                sequence=self.sequence,
            )  # fmt: skip
            key = message.key.encode() if isinstance(message.key, str) else message.key
            topic = self.publisher.resolve(payload.topic)
            self.records.append(
                await self.publisher.send_raw(
                    topic, key, message.value, list(message.headers.items())
                )
            )


@dataclass
class Run:
    h: Harness
    http: aiohttp.ClientSession
    calendars: list[str]
    outlook: list[Outlook]
    bookings: list[str] = field(default_factory=list)
    seen: Counter[tuple[str, int, str]] = field(default_factory=Counter)

    async def call(self, op: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        async with self.http.request(
            method, f"/v1/sub-accounts/{self.h.sub}{path}", **kwargs
        ) as resp:
            body: dict[str, Any] = await resp.json()
            self.seen[(op, resp.status, body.get("code", ""))] += 1
            return body

    def slot(self, rng: random.Random) -> dict[str, str]:
        hour = rng.randrange(HOURS)
        return {"start": at(hour).isoformat(), "end": at(hour + 1).isoformat()}

    async def book(self, rng: random.Random) -> None:
        body = {"booking_calendar_id": rng.choice(self.calendars), "title": "t", **self.slot(rng)}
        created = await self.call(
            "book", "POST", "/bookings", json=body, headers=self.h.headers(uuid.uuid4().hex)
        )
        if "id" in created:
            self.bookings.append(created["id"])

    async def reschedule(self, rng: random.Random) -> None:
        if self.bookings:
            one = f"/bookings/{rng.choice(self.bookings)}"
            body = self.slot(rng)
            await self.call("reschedule", "PATCH", one, json=body, headers=self.h.headers())

    async def cancel(self, rng: random.Random) -> None:
        if self.bookings:
            one = f"/bookings/{rng.choice(self.bookings)}"
            await self.call("cancel", "DELETE", one, headers=self.h.headers())

    async def outlook_event(self, rng: random.Random) -> None:
        source = rng.choice(self.outlook)
        m = source.member
        event_id = f"evt-{rng.randrange(6)}"  # a few events per calendar, moved around
        now = datetime.now(UTC)
        if rng.random() < 0.2:
            await source.send(
                CalendarEventRemoved(
                    connection_id=m.connection_id, calendar_id=m.calendar_id,
                    event_id=event_id, observed_at=now,
                )
            )  # fmt: skip
            return
        start = at(0) + timedelta(minutes=15 * rng.randrange(4 * HOURS))
        await source.send(
            CalendarEventUpserted(
                connection_id=m.connection_id,
                calendar_id=m.calendar_id,
                event_id=event_id,
                start=start,
                end=start + timedelta(minutes=15 * rng.randint(1, 8)),
                show_as=rng.choice(["busy", "busy", "tentative", "free", "oof"]),
                observed_at=now,
            )
        )

    async def worker(self, n: int) -> None:
        rng = random.Random(SEED + n)
        ops = [self.book] * 9 + [self.reschedule] * 4 + [self.cancel] * 2 + [self.outlook_event] * 5
        for _ in range(OPS_PER_WORKER):
            await rng.choice(ops)(rng)


#: Blocking Outlook time over confirmed bookings, and open conflicts, as (booking, event) pairs.
_OVERLAPPING_OUTLOOK = """
SELECT b.booking_id, e.connection_id, e.calendar_id, e.event_id
FROM bookings b
JOIN outlook_connections c ON c.sub_account_id = b.sub_account_id AND c.user_id = b.user_id
JOIN outlook_events e ON e.connection_id = c.connection_id AND e.during && b.during
WHERE b.status = 'confirmed' AND c.status <> 'disconnected'
  AND e.calendar_id = ANY (c.conflict_calendar_ids) AND e.show_as = ANY (c.blocking_show_as)
  AND e.booking_id IS NULL
"""
_OPEN_CONFLICTS = """
SELECT booking_id, connection_id, calendar_id, event_id FROM booking_conflicts
WHERE resolved_at IS NULL
"""


async def test_a_random_mix_with_outlook_events_never_double_books(
    h: Harness, http: aiohttp.ClientSession
) -> None:
    users = ["ann", "bob", "cyd", "dan"]
    members = [await h.member(u) for u in users]
    calendars = [
        await h.calendar("personal", ["ann"]),
        await h.calendar("personal", ["bob"], buffer_after_minutes=15),
        await h.calendar("round_robin", users),
        await h.calendar("round_robin", ["bob", "cyd"], buffer_before_minutes=30),
        await h.calendar("collective", ["cyd", "dan"]),
        await h.calendar("collective", ["ann", "dan"]),
    ]
    publisher: EventPublisher = h.client.server.app[PUBLISHER]  # type: ignore[union-attr]
    run = Run(h, http, calendars, [Outlook(publisher, m) for m in members])

    await asyncio.gather(*(run.worker(n) for n in range(WORKERS)))

    # Every response was an answer the API documents for its operation, never a 5xx.
    expected = {
        ("book", 201, ""),
        ("book", 409, "slot_unavailable"),
        ("reschedule", 200, ""),
        ("reschedule", 409, "slot_unavailable"),
        ("reschedule", 409, "booking_cancelled"),
        ("cancel", 200, ""),
    }
    assert set(run.seen) <= expected, run.seen
    # The run did contend: bookings were made and refused, moved and cancelled.
    for answer in (("book", 201, ""), ("book", 409, "slot_unavailable"), ("reschedule", 200, ""),
                   ("cancel", 200, "")):  # fmt: skip
        assert run.seen[answer] > 0, run.seen

    # The projection applied every Outlook event that was published.
    records = [r for o in run.outlook for r in o.records]
    last: dict[tuple[str, int], int] = {}
    for r in records:
        last[(r.topic, r.partition)] = max(last.get((r.topic, r.partition), -1), r.offset)

    async def applied() -> bool:
        for (topic, partition), offset in last.items():
            stored = await h.pool.fetchval(
                "SELECT next_offset FROM kafka_consumer_offsets"
                " WHERE group_id = $1 AND topic = $2 AND partition = $3",
                h.settings.platform.group(PROJECTION_GROUP),
                topic,
                partition,
            )
            if stored is None or stored <= offset:
                return False
        return True

    await eventually(applied)

    assert await h.pool.fetchval(OVERLAPS) == 0
    overlapping = {tuple(r) for r in await h.pool.fetch(_OVERLAPPING_OUTLOOK)}
    recorded = {tuple(r) for r in await h.pool.fetch(_OPEN_CONFLICTS)}
    assert overlapping == recorded
    confirmed = await h.pool.fetchval("SELECT count(*) FROM bookings WHERE status = 'confirmed'")
    assert confirmed > 0
