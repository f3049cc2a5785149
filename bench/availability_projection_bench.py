"""The availability service's busy projection on the local stack: apply rate, rebuild, busy query.

* dataset: ``--users`` members (one connection, one Conflict Calendar each) with
  ``--events-per-user`` busy rows, loaded by COPY into the indexed ``outlook_events`` (the COPY
  baseline: rows/s into the same table, same run);
* steady state: ``--stream`` calendar events (updates of loaded events and new ones, per-calendar
  sequences continuing the loaded ones) published to Kafka first, then applied by the service's
  own consumers (``ConsumerRunner`` with the service's handlers and batch size, offsets and
  sequences in the same transaction) into the loaded database, run as replica processes of
  their own: one, then ``--replicas`` (default 2) on a fresh load: events/s, and the ratio to
  the COPY rate. Rates count from the moment the replicas share the partitions (the group's
  joins excluded; ``from_first_commit_events_per_s`` includes them);
* batched: the same records applied by ``apply_calendar_records`` one Kafka batch per
  transaction (what the handler does when handed a whole batch; no runner, no offsets);
* rebuild: every topic replayed from offset 0 into an empty database by the three consumers,
  one replica, then ``--replicas``;
* busy query: ``busy_queries.outlook_busy`` for one random member over 7 days, ``--clients``
  concurrent asyncpg clients for ``--query-seconds``: queries/s, p50/p99 ms, and its plan
  (EXPLAIN ANALYZE).

Writes JSON to ``--out``. Needs the local stack's env (``deploy/local/with-env.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import signal
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from asyncpg import Range

from calsync_availability.adapters import busy_queries
from calsync_availability.bootstrap import (
    MIGRATIONS,
    PROJECTION_BATCH,
    PROJECTION_CONSUMERS,
    SERVICE,
    SESSION,
    SOURCE,
)
from calsync_availability.service_layer.projections import apply_calendar_records
from calsync_availability.service_layer.unit_of_work import AvailabilityWork
from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.calendar_events import CalendarEventUpserted
from calsync_common.contracts.connections import ConnectionSnapshot, MicrosoftAccount
from calsync_common.contracts.envelope import Envelope, decode_record, encode
from calsync_common.contracts.topics import CALENDAR_EVENTS, DEAD_LETTER, topic_named
from calsync_common.kafka.admin import ensure_topics
from calsync_common.kafka.consumer import ConsumedEvent, ConsumerConfig, ConsumerRunner
from calsync_common.kafka.producer import EventPublisher
from calsync_common.postgres.migrations import upgrade
from calsync_common.postgres.uow import PostgresUnitOfWork
from calsync_common.runtime import cluster_topics
from calsync_common.testing import running

START = datetime(2026, 12, 1, tzinfo=UTC)
SPREAD_DAYS = 90
CALENDAR = "AAMk-bench"
SUB = "sub-bench"


def connection_id(user: int) -> uuid.UUID:
    return uuid.UUID(int=user + 1)


def event_start(rng: random.Random) -> datetime:
    minutes = rng.randrange(SPREAD_DAYS * 24 * 4) * 15
    return START + timedelta(minutes=minutes)


@contextlib.asynccontextmanager
async def database(admin_dsn: str) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    dsn = f"{admin_dsn.rpartition('/')[0]}/{name}"
    try:
        await upgrade(dsn, SERVICE, MIGRATIONS)
        # The service's own session parameters (generic plans), so its statements run the
        # plans they run in production.
        async with asyncpg.create_pool(
            dsn, min_size=2, max_size=20, server_settings=SESSION
        ) as pool:
            yield dsn, pool
    finally:
        conn = await asyncpg.connect(admin_dsn)
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await conn.close()


def snapshot(user: int) -> ConnectionSnapshot:
    return ConnectionSnapshot(
        connection_id=connection_id(user),
        version=1,
        sub_account_id=SUB,
        user_id=f"user-{user}",
        account=MicrosoftAccount(
            tenant_id="t", object_id=f"o{user}", username=f"u{user}@x.example", is_personal=False
        ),
        status="active",
        linked_calendar_id=CALENDAR,
        conflict_calendar_ids=(CALENDAR,),
        changed_at=START,
    )


async def load(pool: asyncpg.Pool, users: int, per_user: int) -> dict[str, Any]:
    """Connections and busy rows by COPY into the indexed table; the COPY rate."""
    rng = random.Random(1)
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "outlook_connections",
            records=[
                (
                    connection_id(u),
                    1,
                    SUB,
                    f"user-{u}",
                    "active",
                    "one_way",
                    CALENDAR,
                    [CALENDAR],
                    ["busy"],
                    None,
                    START,
                )
                for u in range(users)
            ],
        )
        await conn.copy_records_to_table(
            "outlook_calendar_sequences",
            records=[(connection_id(u), CALENDAR, per_user) for u in range(users)],
        )
        rows = []
        for u in range(users):
            for n in range(per_user):
                start = event_start(rng)
                length = timedelta(minutes=rng.choice((30, 60, 90)))
                rows.append(
                    (
                        connection_id(u),
                        CALENDAR,
                        f"e{n}",
                        Range(start, start + length),
                        "busy",
                        False,
                        None,
                        n + 1,
                    )
                )
        started = time.perf_counter()
        for first in range(0, len(rows), 10_000):
            await conn.copy_records_to_table("outlook_events", records=rows[first : first + 10_000])
        elapsed = time.perf_counter() - started
        await conn.execute("ANALYZE")
    return {"rows": len(rows), "copy_rows_per_s": round(len(rows) / elapsed, 1)}


def stream_events(users: int, per_user: int, total: int) -> list[tuple[EventPayload, int]]:
    """Updates of loaded events (3 in 4) and new ones, with per-calendar sequences."""
    rng = random.Random(2)
    sequences = dict.fromkeys(range(users), per_user)
    out: list[tuple[EventPayload, int]] = []
    for _ in range(total):
        u = rng.randrange(users)
        sequences[u] += 1
        event_id = f"e{rng.randrange(per_user)}" if rng.random() < 0.75 else f"n{sequences[u]}"
        start = event_start(rng)
        payload = CalendarEventUpserted(
            connection_id=connection_id(u),
            calendar_id=CALENDAR,
            event_id=event_id,
            start=start,
            end=start + timedelta(minutes=60),
            show_as=rng.choice(("busy", "busy", "busy", "tentative", "free")),
            observed_at=START,
        )
        out.append((payload, sequences[u]))
    return out


async def publish(
    publisher: EventPublisher, prefix: str, items: list[tuple[EventPayload, int]]
) -> None:
    pending = []
    for payload, sequence in items:
        key = payload.partition_key()
        message = encode(
            payload, source="/calsync/sync-worker", event_id=f"{key}:{sequence}", sequence=sequence
        )
        pending.append(
            await publisher.send(
                f"{prefix}{payload.topic}",
                key.encode(),
                message.value,
                list(message.headers.items()),
            )
        )
        if len(pending) >= 5_000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


async def applied(pool: asyncpg.Pool, group_prefix: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT coalesce(sum(next_offset), 0) FROM kafka_consumer_offsets"
            " WHERE group_id LIKE $1 AND next_offset > 0",
            f"{group_prefix}%",
        )
    )


def freeze_heap() -> None:
    """What the service does once started (``runtime._freeze_heap``): the bench's own data (the
    generated events, the loaded rows) is moved out of the collector's reach, as a service's
    start-up heap is, so full collections do not walk it during the timed part."""
    gc.collect()
    gc.freeze()


@contextlib.asynccontextmanager
async def consumers(
    pool: asyncpg.Pool, publisher: EventPublisher, prefix: str, group: str, topics: list[str]
) -> AsyncIterator[list[ConsumerRunner[Any]]]:
    """The service's consumers of ``topics`` (its batch sizes and handlers), running."""
    uow = PostgresUnitOfWork(pool, SOURCE, AvailabilityWork)
    async with contextlib.AsyncExitStack() as stack:
        runners: list[ConsumerRunner[Any]] = []
        for _, topic, short, handler, batch_handler in PROJECTION_CONSUMERS:
            if topic not in topics:
                continue
            config = ConsumerConfig(
                group_id=f"{group}-{short}",
                topics=[f"{prefix}{topic}"],
                dead_letter_topic=f"{prefix}{DEAD_LETTER.name}",
                batch_max_records=(
                    PROJECTION_BATCH if batch_handler else ConsumerConfig.batch_max_records
                ),
            )
            runner = ConsumerRunner(
                publisher.bootstrap,
                config,
                pool,
                handler,
                publisher,
                bind=uow.bind,
                batch_handler=batch_handler,
            )
            await stack.enter_async_context(running(runner))
            runners.append(runner)
        yield runners


async def replica(dsn: str, prefix: str, group: str, topics: list[str]) -> None:
    """One replica's consumers, in a process of its own as a service replica is: prints its
    assignment (partitions per group) as a JSON line whenever it changes; stops on SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    bootstrap = os.environ["CALSYNC_KAFKA_BOOTSTRAP"]
    publisher = EventPublisher(bootstrap, client_id="bench-replica", source="/calsync/bench")
    await publisher.start()
    try:
        async with (
            asyncpg.create_pool(dsn, min_size=2, max_size=20, server_settings=SESSION) as pool,
            consumers(pool, publisher, prefix, group, topics) as runners,
        ):
            freeze_heap()
            shown: dict[str, list[int]] | None = None
            while not stop.is_set():
                held = {
                    r.config.group_id: sorted(tp.partition for tp in r.consumer.assignment())
                    for r in runners
                }
                if held != shown:
                    print(json.dumps(held), flush=True)
                    shown = held
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.02)
    finally:
        await publisher.stop()


def partition_count(topic: str) -> int:
    entry = topic_named(topic)
    assert entry is not None, topic
    return entry.partitions


async def consume_rate(
    pool: asyncpg.Pool,
    dsn: str,
    prefix: str,
    group: str,
    topics: list[str],
    total: int,
    replicas: int,
) -> dict[str, Any]:
    """Run the service's consumers of ``topics`` in ``replicas`` processes of their own (as
    service replicas run) until ``total`` records are applied. The rate counts from the moment
    the replicas share every topic's partitions (the group's joins and rebalances excluded) to
    the last record; ``from_first_commit_events_per_s`` from the first committed batch."""
    partitions = {
        f"{group}-{short}": partition_count(topic)
        for _, topic, short, _, _ in PROJECTION_CONSUMERS
        if topic in topics
    }
    held: list[dict[str, list[int]]] = [{} for _ in range(replicas)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "replica",
            dsn,
            prefix,
            group,
            ",".join(topics),
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(replicas)
    ]

    async def follow(n: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            held[n] = json.loads(line)

    def shared() -> bool:
        """Every group's partitions held, each by one replica, and each replica holding some
        (a group with fewer partitions than replicas: just all of them held)."""
        for g, count in partitions.items():
            shares = [h.get(g, []) for h in held]
            if sum(map(len, shares)) != count or len({p for s in shares for p in s}) != count:
                return False
            if count >= replicas and not all(shares):
                return False
        return True

    followers = [asyncio.create_task(follow(n, p)) for n, p in enumerate(procs)]
    first: tuple[float, int] | None = None
    steady: tuple[float, int] | None = None
    try:
        async with asyncio.timeout(900):
            while True:
                done = await applied(pool, group)
                now = time.perf_counter()
                if first is None and done > 0:
                    first = (now, done)
                if steady is None and shared():
                    steady = (now, done)
                if done >= total:
                    break
                if any(p.returncode is not None for p in procs):
                    raise RuntimeError("a replica exited before the records were applied")
                await asyncio.sleep(0.05)
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
        for p in procs:
            await p.wait()
        for f in followers:
            f.cancel()
    if first is None or steady is None:
        raise RuntimeError("every record was applied before the replicas shared the partitions")
    return {
        "records": total,
        "replicas": replicas,
        "events_per_s": round((total - steady[1]) / (now - steady[0]), 1),
        "records_counted": total - steady[1],
        "seconds": round(now - steady[0], 2),
        "from_first_commit_events_per_s": round((total - first[1]) / (now - first[0]), 1),
    }


async def batched_rate(
    pool: asyncpg.Pool, bootstrap: str, prefix: str, total: int
) -> dict[str, Any]:
    """The handler's batch path: one transaction per fetched batch (no runner, no offsets)."""
    consumer = AIOKafkaConsumer(
        f"{prefix}{CALENDAR_EVENTS.name}",
        bootstrap_servers=bootstrap,
        group_id=f"bench-batched-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=2_000,
    )
    await consumer.start()
    uow = PostgresUnitOfWork(pool, SOURCE, AvailabilityWork)
    freeze_heap()
    done = 0
    started: float | None = None
    try:
        while done < total:
            batches = await consumer.getmany(timeout_ms=1_000, max_records=2_000)
            for records in batches.values():
                started = started or time.perf_counter()
                messages = []
                for r in records:
                    decoded = decode_record(list(r.headers), r.key, r.value)
                    assert isinstance(decoded, Envelope)  # no tombstones on this topic
                    messages.append(ConsumedEvent(r.topic, r.partition, r.offset, r.key, decoded))
                async with uow() as work:
                    await apply_calendar_records(work, messages)
                done += len(records)
    finally:
        await consumer.stop()
    assert started is not None
    return {"records": done, "events_per_s": round(done / (time.perf_counter() - started), 1)}


async def busy_query_rate(
    pool: asyncpg.Pool, users: int, clients: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    rng = random.Random(3)

    async def client() -> None:
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                user = f"user-{rng.randrange(users)}"
                start = START + timedelta(days=rng.randrange(SPREAD_DAYS - 7))
                began = time.perf_counter()
                await busy_queries.outlook_busy(conn, SUB, [user], start, start + timedelta(days=7))
                latencies.append((time.perf_counter() - began) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    q = statistics.quantiles(latencies, n=100)
    async with pool.acquire() as conn:
        plan = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) " + busy_queries._BUSY,
            SUB,
            ["user-1"],
            START,
            START + timedelta(days=7),
        )
    return {
        "clients": clients,
        "queries": len(latencies),
        "queries_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(q[49], 2),
        "p99_ms": round(q[98], 2),
        "plan": [r[0] for r in plan],
    }


async def main(args: argparse.Namespace) -> None:
    bootstrap = os.environ["CALSYNC_KAFKA_BOOTSTRAP"]
    admin_dsn = os.environ["CALSYNC_TEST_DATABASE_URL"]
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, cluster_topics(prefix))
    publisher = EventPublisher(bootstrap, client_id="bench-availability", source="/calsync/bench")
    await publisher.start()
    results: dict[str, Any] = {}
    try:
        snapshots = [(snapshot(u), 1) for u in range(args.users)]
        items = stream_events(args.users, args.events_per_user, args.stream)
        await publish(publisher, prefix, [*snapshots, *items])
        async with database(admin_dsn) as (dsn, pool):
            results["dataset"] = await load(pool, args.users, args.events_per_user)
            results["busy_query_raw_sql"] = await busy_query_rate(
                pool, args.users, args.clients, args.query_seconds
            )
            results["steady_state_runner"] = await consume_rate(
                pool, dsn, prefix, "bench-steady", [CALENDAR_EVENTS.name], args.stream, 1
            )
        async with database(admin_dsn) as (_, pool):
            await load(pool, args.users, args.events_per_user)
            results["steady_state_batched"] = await batched_rate(
                pool, bootstrap, prefix, args.stream
            )
        if args.replicas > 1:
            async with database(admin_dsn) as (dsn, pool):
                await load(pool, args.users, args.events_per_user)
                results["steady_state_replicas"] = await consume_rate(
                    pool,
                    dsn,
                    prefix,
                    "bench-steady-replicas",
                    [CALENDAR_EVENTS.name],
                    args.stream,
                    args.replicas,
                )
        for name in ("steady_state_runner", "steady_state_replicas"):
            if name in results:
                results[name]["ratio_to_copy"] = round(
                    results[name]["events_per_s"] / results["dataset"]["copy_rows_per_s"], 3
                )
        topics = [c[1] for c in PROJECTION_CONSUMERS]
        rebuilds = [("rebuild_by_replay", 1)]
        if args.replicas > 1:
            rebuilds.append(("rebuild_by_replay_replicas", args.replicas))
        for name, replicas in rebuilds:
            async with database(admin_dsn) as (dsn, pool):
                results[name] = await consume_rate(
                    pool, dsn, prefix, f"bench-{name}", topics, args.stream + args.users, replicas
                )
    finally:
        await publisher.stop()
    report = {
        "benchmark": "availability-projection",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "parameters": vars(args) | {"out": str(args.out)},
        "results": results,
    }
    await asyncio.to_thread(args.out.write_text, json.dumps(report, indent=2) + "\n")
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    if sys.argv[1:2] == ["replica"]:
        dsn, prefix, group, topics = sys.argv[2:6]
        asyncio.run(replica(dsn, prefix, group, topics.split(",")))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--events-per-user", type=int, default=500)
    parser.add_argument(
        "--stream", type=int, default=150_000, help="events applied (30,000 ran ~1.5 s: noise)"
    )
    parser.add_argument(
        "--replicas", type=int, default=2, help="service processes of the second runs"
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--query-seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
