"""A consumer loop run by the app's lifecycle: applies events, reports readiness, stops cleanly."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from calsync_common.contracts.bookings import BookingConfirmed
from calsync_common.contracts.examples import examples
from calsync_common.contracts.topics import BOOKINGS, DEAD_LETTER
from calsync_common.http.health import setup_health_routes
from calsync_common.kafka.admin import ensure_topics
from calsync_common.kafka.consumer import ConsumedEvent, ConsumerConfig, ConsumerRunner, Message
from calsync_common.kafka.producer import EventPublisher
from calsync_common.postgres import Connection
from calsync_common.runtime import consumer_ctx

pytestmark = pytest.mark.integration


def connection(conn: Connection) -> Connection:
    return conn


RUNNER = web.AppKey("runner", ConsumerRunner)


async def test_consumer_ctx_applies_reports_ready_and_shuts_down_gracefully(
    infra: object, pool: asyncpg.Pool, publisher: EventPublisher, unique: str
) -> None:
    topic = replace(BOOKINGS, name=f"test.runtime.{unique}", partitions=1)
    dlq = replace(DEAD_LETTER, name=f"test.runtime.dlq.{unique}")
    bootstrap: str = infra.kafka_bootstrap  # type: ignore[attr-defined]
    await ensure_topics(bootstrap, [topic, dlq])
    applied = asyncio.Event()

    async def handler(conn: Connection, event: Message) -> None:
        assert isinstance(event, ConsumedEvent)
        await conn.execute(
            "INSERT INTO applied VALUES ($1, $2, '{}')", event.envelope.id, event.offset
        )
        applied.set()

    def make_runner(_: web.Application) -> ConsumerRunner:
        config = ConsumerConfig(
            group_id=f"g-{unique}", topics=[topic.name], dead_letter_topic=dlq.name
        )
        return ConsumerRunner(bootstrap, config, pool, handler, publisher, bind=connection)

    app = web.Application()
    app.cleanup_ctx.append(consumer_ctx(RUNNER, make_runner))
    setup_health_routes(app, lambda: {"consumer": app[RUNNER].ready})

    booking = next(e for e in examples() if isinstance(e, BookingConfirmed))
    await publisher.publish(booking, topic=topic.name)
    client: TestClient[web.Request, web.Application]
    async with TestClient(TestServer(app)) as client:
        async with asyncio.timeout(30):
            await applied.wait()
        ready = await client.get("/readyz")
        assert ready.status == 200
        assert (await ready.json())["checks"] == {"consumer": "ok"}
    # Shutdown stopped the loop after committing: the offset is stored with the effect.
    stored = await pool.fetchval(
        "SELECT next_offset FROM kafka_consumer_offsets WHERE group_id = $1", f"g-{unique}"
    )
    assert stored == 1
    assert await pool.fetchval("SELECT count(*) FROM applied") == 1
