"""The whole sync-worker across a stop and start of PostgreSQL, then of Kafka (emulator, the
local stack's real servers): no loop dies, and what happened during the outage (an Outlook
event, a booking) reaches Kafka and Outlook once the server is back."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import pytest

from calsync_common.runtime import FATAL, PUBLISHER
from calsync_common.testing import eventually, local_infra
from calsync_common.transient import TRANSIENT

from .test_subscriptions import Rig
from .test_write_back import (
    _slot,
    await_outcome,
    confirmed,
    create_busy_event,
    default_calendar,
    round_now,
    until_published,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("CALSYNC_LOCAL_INFRA"),
        reason="restarts the servers: only on the local stack that make test starts",
    ),
]


async def _unsent(rig: Rig) -> int:
    conn = await asyncpg.connect(rig.dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox"))
    finally:
        await conn.close()


async def test_postgres_stopped_and_started_every_loop_resumes(rig: Rig) -> None:
    linked = await default_calendar(rig)
    before = await create_busy_event(rig, linked, 20, "Before")
    await rig.snapshot(3, (linked,))
    await until_published(rig, linked, before, 30)

    await asyncio.to_thread(local_infra, "pg-stop")
    try:
        during = await create_busy_event(
            rig, linked, 21, "During"
        )  # its notification may find no database
        booking_id = uuid.uuid4()
        await rig.app[PUBLISHER].publish(confirmed(rig, booking_id, *_slot(days=22)))
        await asyncio.sleep(3)  # every loop meets the outage (connection refused)
        assert rig.app[FATAL] == []
    finally:
        await asyncio.to_thread(local_infra, "pg-start")

    async def due_now() -> bool:
        try:
            await round_now(rig, linked)
        except TRANSIENT:
            return False  # the pool's connections died with the server: the next one is new
        return True

    await eventually(due_now, timeout_s=30)
    await until_published(rig, linked, during, 60)
    written = await await_outcome(rig, booking_id, 1, timeout_s=60)
    assert written[-1]["outcome"] == "written"
    assert rig.app[FATAL] == []


async def test_kafka_stopped_and_started_every_loop_resumes(rig: Rig) -> None:
    linked = await default_calendar(rig)
    before = await create_busy_event(rig, linked, 23, "Before")
    await rig.snapshot(3, (linked,))
    await until_published(rig, linked, before, 30)

    await asyncio.to_thread(local_infra, "kafka-stop")
    try:
        during = await create_busy_event(
            rig, linked, 24, "During"
        )  # its notification cannot be queued
        await round_now(rig, linked)  # the round commits; its events wait in the outbox

        async def recorded() -> bool:
            return await _unsent(rig) > 0

        await eventually(recorded, timeout_s=30)
        await asyncio.sleep(2)  # the relay and the consumers meet the outage
        assert rig.app[FATAL] == []
    finally:
        await asyncio.to_thread(local_infra, "kafka-start")

    async def drained() -> bool:
        return await _unsent(rig) == 0

    await eventually(drained, timeout_s=90)  # the relay sent what waited
    await until_published(rig, linked, during, 30)
    booking_id = uuid.uuid4()  # through the topic and the re-joined consumer group
    await rig.app[PUBLISHER].publish(confirmed(rig, booking_id, *_slot(days=25)))
    written = await await_outcome(rig, booking_id, 1, timeout_s=90)
    assert written[-1]["outcome"] == "written"
    assert rig.app[FATAL] == []
