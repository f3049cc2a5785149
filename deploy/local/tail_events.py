"""Print calendar events as they reach Kafka (``make up`` running): watch a sandbox calendar sync.

``uv run python deploy/local/tail_events.py [--topic calsync.calendar-events.v1] [--from-start]``
Each line: the CloudEvents type, its per-calendar sequence, and the event's times and showAs.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from aiokafka import AIOKafkaConsumer

from calsync_common.contracts.envelope import ContractError, decode_record


async def main(topic: str, from_start: bool) -> None:
    bootstrap = os.environ.get("CALSYNC_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    prefix = os.environ.get("CALSYNC_TOPIC_PREFIX", "")
    consumer = AIOKafkaConsumer(
        f"{prefix}{topic}",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest" if from_start else "latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async for record in consumer:
            try:
                decoded = decode_record(list(record.headers), record.key, record.value)
            except ContractError as exc:
                print(f"(not a calsync event: {exc})", flush=True)
                continue
            data = getattr(decoded, "data", None)
            fields = data.model_dump(mode="json") if data is not None else {"tombstone": True}
            kind = getattr(decoded, "type", "tombstone").removeprefix("dev.calsync.")
            summary = {
                k: fields[k]
                for k in ("event_id", "start", "end", "show_as", "page", "pages", "status")
                if k in fields
            }
            print(f"{kind} #{decoded.sequence} {summary}", flush=True)
    finally:
        await consumer.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topic", default="calsync.calendar-events.v1")
    parser.add_argument("--from-start", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.topic, args.from_start))
