"""A consumer process that SIGKILLs itself between the database commit and the Kafka commit.

Run by ``test_kafka_consumer.py``: ``python consumer_process.py BOOTSTRAP DSN TOPIC DLQ GROUP``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import asyncpg

from calsync_common.kafka.consumer import ConsumedEvent, ConsumerConfig, ConsumerRunner, Message
from calsync_common.kafka.producer import EventPublisher
from calsync_common.postgres import Connection


def connection(conn: Connection) -> Connection:
    return conn


async def record(conn: Connection, event: Message) -> None:
    assert isinstance(event, ConsumedEvent)
    await conn.execute(
        "INSERT INTO applied (event_id, offset_no, payload) VALUES ($1, $2, $3)",
        event.envelope.id,
        event.offset,
        event.envelope.data.model_dump_json(),
    )


async def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # no finally, no leave-group, no Kafka commit


async def main(bootstrap: str, dsn: str, topic: str, dlq: str, group: str) -> None:
    config = ConsumerConfig(
        group_id=group,
        topics=[topic],
        dead_letter_topic=dlq,
        # The group waits for a dead member's session to expire before reassigning: keep it short.
        extra={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
    )
    async with asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
        publisher = EventPublisher(bootstrap, client_id="killed", source="/calsync/test")
        await publisher.start()
        runner = ConsumerRunner(
            bootstrap, config, pool, record, publisher, bind=connection, after_batch_applied=die
        )
        await runner.start()
        await runner.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
