"""Physical-limit baselines every later figure is compared with (``make bench``).

* Kafka: produce rate of 1 KiB CloudEvents through the idempotent producer (acks=all), awaiting
  batches of sends, then consume rate of the same messages, on the local broker.
* PostgreSQL: insert rate into a table shaped like the busy-slot projection (tstzrange + GiST
  exclusion-ready index) by COPY and by executemany in one transaction.

Writes JSON (machine, versions, figures) to ``--out``. Needs the local stack's env
(``deploy/local/with-env.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
import uuid
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from calsync_common.contracts.calendar_events import CalendarEventUpserted
from calsync_common.contracts.envelope import encode

BUSY_TABLE = """
CREATE TABLE {name} (
    calendar_id text        NOT NULL,
    event_id    text        NOT NULL,
    during      tstzrange   NOT NULL,
    show_as     text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (calendar_id, event_id)
);
CREATE INDEX ON {name} USING gist (calendar_id, during);
"""


def one_kib_event(n: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=30 * n)
    payload = CalendarEventUpserted(
        connection_id=uuid.uuid4(),
        calendar_id="AAMkAGI2TG93AAA=" * 8,
        event_id=f"AAMkAGI2THVSAAA-{n:010d}",
        start=start,
        end=start + timedelta(minutes=30),
        show_as="busy",
        change_key="DwAAABYAAADIWz0Q" * 8,
        observed_at=datetime.now(UTC),
    )
    msg = encode(payload, source="/calsync/bench")
    value = msg.value + b" " * max(
        0, 1024 - len(msg.value) - sum(len(v) for v in msg.headers.values())
    )
    key = msg.key.encode() if isinstance(msg.key, str) else (msg.key or b"")
    return key, value, list(msg.headers.items())


async def kafka_rates(bootstrap: str, count: int) -> dict[str, Any]:
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    finally:
        await admin.close()
    messages = [one_kib_event(n) for n in range(count)]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        t0 = time.perf_counter()
        window = []
        for key, value, headers in messages:
            window.append(await producer.send(topic, value=value, key=key, headers=headers))
            if len(window) >= 5000:
                await asyncio.gather(*window)
                window.clear()
        await asyncio.gather(*window)
        produce_s = time.perf_counter() - t0
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        got = 0
        t0 = time.perf_counter()
        async with asyncio.timeout(120):
            while got < count:
                batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                got += sum(len(v) for v in batch.values())
        consume_s = time.perf_counter() - t0
    finally:
        await consumer.stop()
    return {
        "messages": count,
        "message_bytes": len(messages[0][1]) + sum(len(v) for _, v in messages[0][2]),
        "partitions": 6,
        "produce_msgs_per_s": round(count / produce_s),
        "consume_msgs_per_s": round(count / consume_s),
        "producer": "aiokafka idempotent, acks=all, linger_ms=5",
    }


async def postgres_rates(dsn: str, rows: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        base = datetime(2026, 1, 1, tzinfo=UTC)
        data = [
            (
                f"cal-{n % 1000}",
                f"evt-{n}",
                asyncpg.Range(
                    base + timedelta(minutes=30 * n), base + timedelta(minutes=30 * n + 30)
                ),
                "busy",
            )
            for n in range(rows)
        ]
        results: dict[str, Any] = {"rows": rows}
        for method in ("copy", "executemany"):
            name = f"bench_busy_{method}_{uuid.uuid4().hex[:8]}"
            await conn.execute(BUSY_TABLE.format(name=name))
            t0 = time.perf_counter()
            async with conn.transaction():
                if method == "copy":
                    await conn.copy_records_to_table(
                        name, records=data, columns=["calendar_id", "event_id", "during", "show_as"]
                    )
                else:
                    await conn.executemany(
                        f"INSERT INTO {name} (calendar_id, event_id, during, show_as)"
                        " VALUES ($1, $2, $3, $4)",
                        data,
                    )
            results[f"{method}_rows_per_s"] = round(rows / (time.perf_counter() - t0))
            await conn.execute(f"DROP TABLE {name}")
        v = conn.get_server_version()
        results["server_version"] = f"{v.major}.{v.micro}"
        return results
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kafka-messages", type=int, default=100_000)
    parser.add_argument("--pg-rows", type=int, default=100_000)
    args = parser.parse_args()
    bootstrap = os.environ["CALSYNC_KAFKA_BOOTSTRAP"]
    dsn = os.environ["CALSYNC_TEST_DATABASE_URL"]
    result = {
        "benchmark": "baseline",
        "at": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {p: version(p) for p in ("aiokafka", "asyncpg", "aiohttp")},
        "kafka": await kafka_rates(bootstrap, args.kafka_messages),
        "postgres": await postgres_rates(dsn, args.pg_rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
