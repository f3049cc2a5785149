"""One consumer group member in a process of its own, for rebalance tests.

``python member_process.py BOOTSTRAP DSN TOPIC DLQ GROUP [batched]``: applies every event to
``applied`` (slowly, so a test can kill it mid-stream) until SIGTERM (graceful) or SIGKILL; with
``batched``, through a batch handler (a fetched run at a time).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence

import asyncpg

from calsync_common.kafka.consumer import ConsumedEvent, ConsumerConfig, ConsumerRunner, Message
from calsync_common.kafka.producer import EventPublisher
from calsync_common.logging import configure_logging
from calsync_common.postgres import Connection


async def record(conn: Connection, message: Message) -> None:
    assert isinstance(message, ConsumedEvent)
    await conn.execute(
        "INSERT INTO applied (event_id, offset_no, payload) VALUES ($1, $2, $3)",
        message.envelope.id,
        message.offset,
        message.envelope.data.model_dump_json(),
    )
    await asyncio.sleep(0.01)  # a slow handler: kills and joins land mid-batch


async def record_batch(conn: Connection, messages: Sequence[Message]) -> None:
    for message in messages:
        await record(conn, message)


async def main(
    bootstrap: str, dsn: str, topic: str, dlq: str, group: str, mode: str = "per-record"
) -> None:
    configure_logging("member", "WARNING")  # JSON lines on stdout, shown when a test fails
    config = ConsumerConfig(
        group_id=group,
        topics=[topic],
        dead_letter_topic=dlq,
        batch_max_records=20,
        # A dead member's partitions move once its session expires: keep it short.
        extra={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
    )
    async with asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
        publisher = EventPublisher(bootstrap, client_id="member", source="/calsync/test")
        await publisher.start()
        runner = ConsumerRunner(
            bootstrap,
            config,
            pool,
            record,
            publisher,
            bind=lambda c: c,
            batch_handler=record_batch if mode == "batched" else None,
        )
        await runner.start()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, runner.request_stop)
        try:
            await runner.run()
        finally:
            await runner.close()
            await publisher.stop()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
