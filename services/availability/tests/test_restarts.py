"""The availability service across a stop and start of PostgreSQL, then of Kafka (the local
stack's real servers): requests meet a clear ``503 dependency_unavailable`` while the database
is away (never a 500), a retry with the same Idempotency-Key books once when it is back, and a
booking taken while Kafka is away waits in the outbox and reaches the topic after."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from calsync_common.runtime import FATAL
from calsync_common.testing import eventually, local_infra

from .bookings_harness import OVERLAPS, Harness, at, serve, settings_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("CALSYNC_LOCAL_INFRA"),
        reason="restarts the servers: only on the local stack that make test starts",
    ),
]
CONFIRMED = "dev.calsync.booking.confirmed.v1"


@pytest.fixture
async def h(infra: Any, fresh_database: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async for harness in serve(settings_for(infra.kafka_bootstrap, fresh_database, topic_prefix)):
        yield harness


def _fatal(h: Harness) -> list[str]:
    return list(h.client.server.app[FATAL])  # type: ignore[union-attr]


async def test_postgres_away_is_503_to_retry_and_the_retry_books_once(h: Harness) -> None:
    await h.member("ann")
    cal = await h.calendar("personal", ["ann"])
    assert (await h.book(cal, at(9), at(10))).status == 201
    key = uuid.uuid4().hex

    await asyncio.to_thread(local_infra, "pg-stop")
    try:
        resp = await h.book(cal, at(11), at(12), key=key)
        assert resp.status == 503, await resp.text()
        assert resp.content_type == "application/problem+json"
        assert resp.headers["Retry-After"] == "2"
        assert (await resp.json())["code"] == "dependency_unavailable"
        busy = await h.client.get(
            f"/v1/sub-accounts/{h.sub}/users/ann/busy",
            params={"start": at(0).isoformat(), "end": at(23).isoformat()},
            headers=h.headers(),
        )
        assert busy.status == 503, await busy.text()
    finally:
        await asyncio.to_thread(local_infra, "pg-start")

    answers: list[Any] = []

    async def booked() -> bool:  # the client retries as Retry-After says, same key
        resp = await h.book(cal, at(11), at(12), key=key)
        answers.append(resp.status)
        return resp.status != 503

    await eventually(booked, timeout_s=30)
    assert answers[-1] == 201
    again = await h.book(cal, at(11), at(12), key=key)
    assert again.status == 201  # the first answer, not a second booking
    booking = await again.json()
    assert await h.outbox(booking["id"]) == [CONFIRMED]
    assert await h.pool.fetchval("SELECT count(*) FROM bookings") == 2
    assert await h.pool.fetchval(OVERLAPS) == 0
    assert _fatal(h) == []


async def test_a_booking_taken_while_kafka_is_away_reaches_the_topic_after(h: Harness) -> None:
    await h.member("bob")
    cal = await h.calendar("personal", ["bob"])
    await asyncio.to_thread(local_infra, "kafka-stop")
    try:
        resp = await h.book(cal, at(13), at(14))
        assert resp.status == 201, await resp.text()  # the outbox holds the event
        booking = await resp.json()
        assert await h.pool.fetchval("SELECT count(*) FROM outbox") >= 1
    finally:
        await asyncio.to_thread(local_infra, "kafka-start")

    async def sent() -> bool:
        return await h.pool.fetchval("SELECT count(*) FROM outbox") == 0

    await eventually(sent, timeout_s=90)
    assert await h.outbox(booking["id"]) == [CONFIRMED]  # now read from the topic
    assert _fatal(h) == []
