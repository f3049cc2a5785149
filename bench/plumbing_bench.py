"""The shared plumbing's speed on the local stack (``make bench``): outbox, relay, consumer runner.

* outbox writes: events per second added by units of work of 1 and of 100 events;
* relay: rows relayed per second from a filled outbox (per-key order, acks awaited, marks);
* end to end: events per second from outbox through the relay to a ConsumerRunner that applies
  them with offsets and sequences in PostgreSQL;
* latency: commit of a unit of work to the handler's commit, one event at a time (the path of
  promise 1: "within a second of the notification"), p50/p95/p99 in milliseconds.

Writes JSON to ``--out``. Needs the local stack's env (``deploy/local/with-env.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from calsync_common.contracts.bookings import BookingConfirmed
from calsync_common.contracts.examples import examples
from calsync_common.contracts.topics import BOOKINGS, DEAD_LETTER
from calsync_common.kafka.admin import ensure_topics
from calsync_common.kafka.consumer import ConsumerConfig, ConsumerRunner, Message
from calsync_common.kafka.producer import EventPublisher
from calsync_common.outbox.relay import OutboxRelay, RelayConfig
from calsync_common.postgres import Connection
from calsync_common.postgres.migrations import upgrade_plumbing
from calsync_common.postgres.uow import unit_of_work

BOOKING = next(e for e in examples() if isinstance(e, BookingConfirmed))
SOURCE = "/calsync/bench"


def booking(key: int, n: int) -> BookingConfirmed:
    return BOOKING.model_copy(update={"booking_id": uuid.UUID(int=key), "version": n})


async def database(admin_dsn: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = f"{admin_dsn.rpartition('/')[0]}/{name}"
    await upgrade_plumbing(dsn, "bench")
    return dsn


async def drop(admin_dsn: str, dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE "{dsn.rpartition("/")[2]}" WITH (FORCE)')
    finally:
        await conn.close()


async def outbox_writes(pool: asyncpg.Pool, topic: str, total: int, per_txn: int) -> float:
    uow = unit_of_work(pool, SOURCE)
    started = time.perf_counter()
    for first in range(0, total, per_txn):
        async with uow() as work:
            for n in range(first, first + per_txn):
                await work.outbox.add(booking(n % 50, n + 1), topic=topic)
    return total / (time.perf_counter() - started)


async def relay_rate(dsn: str, pool: asyncpg.Pool, publisher: EventPublisher, total: int) -> float:
    relay = OutboxRelay(dsn, pool, publisher, service="bench", config=RelayConfig(batch_size=1000))
    await relay.claim_buckets()
    started = time.perf_counter()
    sent = 0
    while sent < total:
        sent += await relay.relay_once()
    elapsed = time.perf_counter() - started
    await relay.close()
    return sent / elapsed


async def end_to_end(
    bootstrap: str, dsn: str, pool: asyncpg.Pool, publisher: EventPublisher, total: int
) -> dict[str, float]:
    topic = replace(BOOKINGS, name=f"bench.plumbing.{uuid.uuid4().hex[:8]}", partitions=6)
    dlq = replace(DEAD_LETTER, name=f"{topic.name}.dlq")
    await ensure_topics(bootstrap, [topic, dlq])
    await pool.execute("CREATE TABLE IF NOT EXISTS applied (id text PRIMARY KEY, at timestamptz)")
    done = asyncio.Event()
    applied = 0
    latencies: list[float] = []
    sent_at: dict[str, float] = {}

    async def handler(conn: Connection, message: Message) -> None:
        nonlocal applied
        key = message.key.decode() if message.key else ""
        await conn.execute("INSERT INTO applied VALUES ($1, now())", f"{key}:{message.offset}")
        applied += 1
        if key in sent_at:
            latencies.append((time.perf_counter() - sent_at.pop(key)) * 1000)
        if applied >= total:
            done.set()

    config = ConsumerConfig(
        group_id=f"bench-{topic.name}", topics=[topic.name], dead_letter_topic=dlq.name
    )
    runner = ConsumerRunner(bootstrap, config, pool, handler, publisher, bind=lambda c: c)
    relay = OutboxRelay(
        dsn,
        pool,
        publisher,
        service="bench-e2e",
        config=RelayConfig(batch_size=1000, idle_poll_s=1.0),
    )
    await runner.start()
    tasks = [asyncio.create_task(runner.run()), asyncio.create_task(relay.run())]
    try:
        await asyncio.sleep(3)  # group join and assignment
        uow = unit_of_work(pool, SOURCE)
        started = time.perf_counter()
        for first in range(0, total - 200, 100):
            async with uow() as work:
                for n in range(first, first + 100):
                    await work.outbox.add(booking(n % 200, n + 1), topic=topic.name)
        async with asyncio.timeout(300):
            while applied < total - 200:  # noqa: ASYNC110 (a counter, polled; bounded)
                await asyncio.sleep(0.01)
        throughput = (total - 200) / (time.perf_counter() - started)
        for n in range(200):  # latency: one event per unit of work, one at a time
            key = str(uuid.UUID(int=10_000 + n))
            async with uow() as work:
                await work.outbox.add(booking(10_000 + n, 1), topic=topic.name)
            sent_at[key] = time.perf_counter()
            async with asyncio.timeout(30):
                while key in sent_at:  # noqa: ASYNC110 (polled at 1 ms; bounded)
                    await asyncio.sleep(0.001)
        await asyncio.wait_for(done.wait(), 60)
    finally:
        runner.request_stop()
        relay.request_stop()
        await asyncio.gather(*tasks)
        await runner.close()
    q = statistics.quantiles(latencies, n=100)
    return {
        "events_per_s": round(throughput, 1),
        "latency_ms_p50": round(q[49], 1),
        "latency_ms_p95": round(q[94], 1),
        "latency_ms_p99": round(q[98], 1),
        "latency_samples": len(latencies),
    }


async def main(out: Path) -> None:
    bootstrap = os.environ["CALSYNC_KAFKA_BOOTSTRAP"]
    admin_dsn = os.environ["CALSYNC_TEST_DATABASE_URL"]
    dsn = await database(admin_dsn)
    publisher = EventPublisher(bootstrap, client_id="bench", source=SOURCE)
    await publisher.start()
    results: dict[str, Any] = {}
    try:
        async with asyncpg.create_pool(dsn, min_size=2, max_size=6) as pool:
            topic = replace(BOOKINGS, name=f"bench.outbox.{uuid.uuid4().hex[:8]}", partitions=6)
            await ensure_topics(bootstrap, [topic])
            results["outbox_writes_per_s_1_per_txn"] = round(
                await outbox_writes(pool, topic.name, 2_000, 1), 1
            )
            results["outbox_writes_per_s_100_per_txn"] = round(
                await outbox_writes(pool, topic.name, 20_000, 100), 1
            )
            results["relay_rows_per_s"] = round(await relay_rate(dsn, pool, publisher, 22_000), 1)
            results["end_to_end"] = await end_to_end(bootstrap, dsn, pool, publisher, 10_200)
    finally:
        await publisher.stop()
        await drop(admin_dsn, dsn)
    report = {
        "benchmark": "plumbing",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": results,
    }
    await asyncio.to_thread(out.write_text, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    asyncio.run(main(parser.parse_args().out))
