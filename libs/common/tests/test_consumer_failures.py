"""The consumer runner under the failures of production, on the real broker and database.

Rebalances with real processes (a member joins, a member is SIGKILLed), PostgreSQL connections
killed and the server restarted under load, a Kafka commit that fails, a database restored to an
older point, a topic recreated under a stored offset, a handler failing on one partition while
others flow, a bug in the loop itself. Each test states the promise it holds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError
from aiokafka.partitioner import DefaultPartitioner

from calsync_common.contracts.bookings import BookingConfirmed
from calsync_common.contracts.connections import ConnectionSnapshot
from calsync_common.contracts.envelope import encode
from calsync_common.contracts.examples import CONN, examples
from calsync_common.contracts.topics import BOOKINGS, CONNECTIONS, DEAD_LETTER
from calsync_common.kafka.admin import ensure_topics
from calsync_common.kafka.consumer import (
    ConsumedEvent,
    ConsumedTombstone,
    ConsumerConfig,
    ConsumerRunner,
    Message,
)
from calsync_common.kafka.producer import EventPublisher
from calsync_common.postgres import Connection
from calsync_common.postgres.uow import unit_of_work
from calsync_common.runtime import FATAL, consumer_ctx, new_app
from calsync_common.testing import connection, eventually, local_infra, running

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent
BOOKING = next(e for e in examples() if isinstance(e, BookingConfirmed))


def booking(n: int, *, key: int | None = None) -> BookingConfirmed:
    booking_id = UUID(int=BOOKING.booking_id.int + (n if key is None else key))
    return BOOKING.model_copy(
        update={"booking_id": booking_id, "version": n + 1, "title": f"booking {n}"}
    )


def key_on_partition(partition: int, partitions: int, *, not_before: int = 0) -> int:
    """A booking key offset that the default partitioner sends to ``partition``."""
    partitioner = DefaultPartitioner()
    for k in range(not_before, not_before + 10_000):
        key = booking(1, key=k).partition_key().encode()
        if partitioner(key, list(range(partitions)), list(range(partitions))) == partition:
            return k
    raise AssertionError("no key found")


async def record(conn: Connection, message: Message) -> None:
    assert isinstance(message, ConsumedEvent)
    await conn.execute(
        "INSERT INTO applied (event_id, offset_no, payload) VALUES ($1, $2, $3)",
        message.envelope.id,
        message.offset,
        message.envelope.data.model_dump_json(),
    )


def batched(
    handler: Callable[[Connection, Message], Awaitable[None]],
) -> Callable[[Connection, Sequence[Message]], Awaitable[None]]:
    """The same effects through the runner's batch path (a fetched run, one savepoint)."""

    async def apply(conn: Connection, messages: Sequence[Message]) -> None:
        for message in messages:
            await handler(conn, message)

    return apply


#: Each failure test runs both ways the runner applies records.
MODES = pytest.mark.parametrize("mode", ["per-record", "batched"])


async def applied_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM applied"))


async def duplicates(pool: asyncpg.Pool) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM (SELECT event_id FROM applied GROUP BY event_id"
            " HAVING count(*) > 1) d"
        )
    )


@pytest.fixture
async def topics(infra: object, unique: str) -> tuple[str, str]:
    main = replace(BOOKINGS, name=f"test.failures.{unique}", partitions=4)
    dlq = replace(DEAD_LETTER, name=f"test.failures.dlq.{unique}")
    await ensure_topics(infra.kafka_bootstrap, [main, dlq])  # type: ignore[attr-defined]
    return main.name, dlq.name


def runner_for(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    group: str,
    handler: Callable[[Connection, Message], Awaitable[None]] = record,
    *,
    mode: str = "per-record",
    **config: Any,
) -> ConsumerRunner[Connection]:
    topic, dlq = topics
    settings = ConsumerConfig(group_id=group, topics=[topic], dead_letter_topic=dlq, **config)
    return ConsumerRunner(
        infra.kafka_bootstrap,  # type: ignore[attr-defined]
        settings,
        pool,
        handler,
        publisher,
        bind=connection,
        batch_handler=batched(handler) if mode == "batched" else None,
    )


# -- rebalances with real processes ---------------------------------------------------------


@MODES
async def test_a_member_joining_and_a_member_sigkilled_mid_stream_apply_each_event_once(
    infra: object,
    fresh_database: str,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
    mode: str,
) -> None:
    topic, dlq = topics
    bootstrap: str = infra.kafka_bootstrap  # type: ignore[attr-defined]
    total = 400
    member = [sys.executable, str(HERE / "member_process.py"), bootstrap, fresh_database]
    member += [topic, dlq, f"g-{unique}", mode]

    async def produce() -> None:
        for n in range(total):  # events without sequences: only the offsets prevent duplicates
            await publisher.publish(booking(n), topic=topic)
            if n % 20 == 0:
                await asyncio.sleep(0.05)

    producing = asyncio.create_task(produce())
    first = await asyncio.create_subprocess_exec(*member)
    second: asyncio.subprocess.Process | None = None
    try:
        await eventually(lambda: _at_least(applied_count(pool), 60))
        second = await asyncio.create_subprocess_exec(*member)  # joins: a rebalance mid-stream
        await eventually(lambda: _at_least(applied_count(pool), 200))
        first.send_signal(signal.SIGKILL)  # dies mid-batch, without leaving the group
        assert await first.wait() == -signal.SIGKILL
        await producing
        await eventually(lambda: _at_least(applied_count(pool), total), timeout_s=120)
        assert second.returncode is None, "the surviving member must still run"
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(30):
                    await proc.wait()
    assert second is not None
    assert second.returncode == 0  # SIGTERM: graceful stop
    assert await applied_count(pool) == total
    assert await duplicates(pool) == 0


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def _at_least(value: Awaitable[int], wanted: int) -> bool:
    return await value >= wanted


# -- PostgreSQL failures under load ---------------------------------------------------------


@MODES
async def test_postgres_connections_killed_under_load_lose_and_double_nothing(
    infra: object,
    fresh_database: str,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
    mode: str,
) -> None:
    """What clients see of a PostgreSQL restart: every session terminated mid-transaction
    (AdminShutdownError, ConnectionDoesNotExistError). The loop survives and resumes."""
    topic, _ = topics
    total = 300
    slow_pool = await asyncpg.create_pool(fresh_database, min_size=2, max_size=4)

    async def slow(conn: Connection, message: Message) -> None:
        await record(conn, message)
        await asyncio.sleep(0.005)

    runner = runner_for(infra, slow_pool, publisher, topics, f"g-{unique}", slow, mode=mode)
    admin = await asyncpg.connect(infra.admin_dsn)  # type: ignore[attr-defined]
    try:
        async with running(runner) as task:
            for n in range(total):
                await publisher.publish(booking(n), topic=topic)
            for _ in range(3):
                await eventually(lambda: _at_least(applied_count(pool), 30))
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid()"
                    " AND application_name NOT LIKE 'keep%'",
                    fresh_database.rsplit("/", 1)[1],
                )
                await asyncio.sleep(0.3)
            await eventually(lambda: _at_least(_count_fresh(fresh_database), total))
            assert not task.done(), "the loop must survive"
            await runner.ready()
    finally:
        await admin.close()
        await slow_pool.close()
    assert await _count_fresh(fresh_database) == total
    assert await _duplicates_fresh(fresh_database) == 0


async def _count_fresh(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM applied"))
    finally:
        await conn.close()


async def _duplicates_fresh(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT event_id FROM applied GROUP BY event_id"
                " HAVING count(*) > 1) d"
            )
        )
    finally:
        await conn.close()


@pytest.mark.skipif(
    not os.environ.get("CALSYNC_LOCAL_INFRA"),
    reason="restarts the server: only on the local stack that make test starts",
)
@MODES
async def test_postgres_stopped_and_started_under_load_loses_and_doubles_nothing(
    infra: object,
    fresh_database: str,
    pool: asyncpg.Pool,  # migrated, with the applied table
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
    mode: str,
) -> None:
    topic, _ = topics
    total = 200
    async with asyncpg.create_pool(fresh_database, min_size=1, max_size=4) as own_pool:
        runner = runner_for(infra, own_pool, publisher, topics, f"g-{unique}", mode=mode)
        async with running(runner) as task:
            for n in range(total // 2):
                await publisher.publish(booking(n), topic=topic)
            await eventually(lambda: _at_least(_count_fresh(fresh_database), 20))
            await asyncio.to_thread(local_infra, "pg-stop")
            try:
                for n in range(total // 2, total):  # produced while the database is down
                    await publisher.publish(booking(n), topic=topic)
                await asyncio.sleep(2)  # the loop meets the outage (connection refused)
                assert not task.done()
            finally:
                await asyncio.to_thread(local_infra, "pg-start")
            await eventually(lambda: _at_least(_count_fresh(fresh_database), total), 90)
            assert not task.done(), "the loop must survive the outage"
    assert await _count_fresh(fresh_database) == total
    assert await _duplicates_fresh(fresh_database) == 0


@pytest.mark.skipif(
    not os.environ.get("CALSYNC_LOCAL_INFRA"),
    reason="restarts the broker: only on the local stack that make test starts",
)
@MODES
async def test_kafka_stopped_and_started_under_load_loses_and_doubles_nothing(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
    mode: str,
) -> None:
    """Polls fail while the broker is away (the loop backs off instead of dying), commits fail,
    the group is re-joined; then the stream resumes from PostgreSQL's offsets."""
    topic, _ = topics
    runner = runner_for(infra, pool, publisher, topics, f"g-{unique}", mode=mode)
    async with running(runner) as task:
        for n in range(50):
            await publisher.publish(booking(n), topic=topic)
        await eventually(lambda: _at_least(applied_count(pool), 50))
        await asyncio.to_thread(local_infra, "kafka-stop")
        try:
            await asyncio.sleep(3)  # the loop meets the outage
            assert not task.done()
        finally:
            await asyncio.to_thread(local_infra, "kafka-start")
        for n in range(50, 100):
            await publisher.publish(booking(n), topic=topic)
        await eventually(lambda: _at_least(applied_count(pool), 100), 120)
        assert not task.done(), "the loop must survive the outage"
        await runner.ready()
    assert await applied_count(pool) == 100
    assert await duplicates(pool) == 0


# -- Kafka commit failures ------------------------------------------------------------------


async def test_a_failing_kafka_commit_is_ignored_and_applies_nothing_twice(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
) -> None:
    topic, _ = topics
    runner = runner_for(infra, pool, publisher, topics, f"g-{unique}", batch_max_records=5)
    real_commit = runner.consumer.commit
    failed = 0

    async def commit_fails_four_times(offsets: dict[TopicPartition, int]) -> None:
        nonlocal failed
        if failed <= 3:
            failed += 1
            raise CommitFailedError("the group rebalanced")
        await real_commit(offsets)

    runner.consumer.commit = commit_fails_four_times  # type: ignore[method-assign]
    async with running(runner) as task:
        for n in range(40):
            await publisher.publish(booking(n), topic=topic)
        await eventually(lambda: _at_least(applied_count(pool), 40))
        assert not task.done()
    assert failed == 4
    assert await applied_count(pool) == 40
    assert await duplicates(pool) == 0


# -- stored offsets against the log ---------------------------------------------------------


async def test_a_database_restored_to_an_older_point_is_replayed_from_its_own_offsets(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
) -> None:
    """Kafka's committed offsets are ahead of the restored database: only seeking to the
    database's offsets on assignment re-applies what the restore took away. (Without the seek,
    the member would resume from Kafka's commits and the restored rows would be lost.)"""
    topic, _ = topics
    group = f"g-{unique}"
    for n in range(20):
        await publisher.publish(booking(1, key=n), topic=topic)
    async with running(runner_for(infra, pool, publisher, topics, group)):
        await eventually(lambda: _at_least(applied_count(pool), 20))
        await eventually(lambda: _kafka_committed(infra, group, topic, 20))
    # The restore: every partition back to half of what it had applied, effects included.
    rows = await pool.fetch(
        "SELECT partition, next_offset FROM kafka_consumer_offsets"
        " WHERE group_id = $1 AND next_offset > 0",
        group,
    )
    for row in rows:
        await pool.execute(
            "UPDATE kafka_consumer_offsets SET next_offset = $1, witness = NULL"
            " WHERE group_id = $2 AND topic = $3 AND partition = $4",
            row["next_offset"] // 2,
            group,
            topic,
            row["partition"],
        )
    await _restore_applied_rows(pool, topic, infra)
    assert 0 < await applied_count(pool) < 20
    async with running(runner_for(infra, pool, publisher, topics, group)):
        await eventually(lambda: _at_least(applied_count(pool), 20))
    assert await applied_count(pool) == 20
    assert await duplicates(pool) == 0


async def _kafka_committed(infra: object, group: str, topic: str, wanted: int) -> bool:
    probe = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, group_id=group)  # type: ignore[attr-defined]
    await probe.start()
    try:
        committed = [await probe.committed(TopicPartition(topic, p)) for p in range(4)]
    finally:
        await probe.stop()
    return sum(c or 0 for c in committed) == wanted


async def _restore_applied_rows(pool: asyncpg.Pool, topic: str, infra: object) -> None:
    """Delete the effects of the records at or after each partition's restored offset."""
    reader = AIOKafkaConsumer(
        topic,
        bootstrap_servers=infra.kafka_bootstrap,
        auto_offset_reset="earliest",  # type: ignore[attr-defined]
    )
    await reader.start()
    try:
        stored = {
            r["partition"]: r["next_offset"]
            for r in await pool.fetch("SELECT partition, next_offset FROM kafka_consumer_offsets")
        }
        seen = 0
        async with asyncio.timeout(30):
            while seen < 20:
                batch = await reader.getmany(timeout_ms=300)
                for tp, records in batch.items():
                    for r in records:
                        seen += 1
                        if r.offset >= stored.get(tp.partition, 0):
                            event_id = dict(r.headers)["ce_id"].decode()
                            await pool.execute("DELETE FROM applied WHERE event_id = $1", event_id)
    finally:
        await reader.stop()


async def _recreate_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([name])
        async with asyncio.timeout(30):
            while name in await admin.list_topics():  # noqa: ASYNC110 (deletion is async)
                await asyncio.sleep(0.2)
    finally:
        await admin.close()
    topic = replace(BOOKINGS, name=name, partitions=partitions)
    async with asyncio.timeout(30):
        while True:
            try:
                await ensure_topics(bootstrap, [topic])
            except Exception:  # the broker may still be finishing the deletion
                await asyncio.sleep(0.5)
            else:
                return


async def _resets(pool: asyncpg.Pool) -> list[str]:
    return [
        r["reason"]
        for r in await pool.fetch("SELECT reason FROM kafka_consumer_offset_resets ORDER BY id")
    ]


@pytest.mark.parametrize(
    ("before", "after", "reason"),
    [(12, 4, "ahead_of_log_end"), (4, 12, "witness_mismatch")],
    ids=["fewer-records-than-stored", "more-records-than-stored"],
)
async def test_a_recreated_topic_is_detected_and_replayed_never_silently_skipped(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    unique: str,
    before: int,
    after: int,
    reason: str,
) -> None:
    bootstrap: str = infra.kafka_bootstrap  # type: ignore[attr-defined]
    topic = f"test.recreated.{unique}"
    dlq = replace(DEAD_LETTER, name=f"test.recreated.dlq.{unique}")
    await ensure_topics(bootstrap, [replace(BOOKINGS, name=topic, partitions=1), dlq])
    group = f"g-{unique}"
    topics = (topic, dlq.name)
    for n in range(before):
        await publisher.publish(booking(n, key=0), topic=topic)
    async with running(runner_for(infra, pool, publisher, topics, group)):
        await eventually(lambda: _at_least(applied_count(pool), before))

    await _recreate_topic(bootstrap, topic, partitions=1)
    for n in range(100, 100 + after):
        await publisher.publish(booking(n, key=0), topic=topic)
    async with running(runner_for(infra, pool, publisher, topics, group)):
        await eventually(lambda: _at_least(applied_count(pool), before + after))
    assert await applied_count(pool) == before + after  # every record of the new topic applied
    assert await duplicates(pool) == 0
    assert await _resets(pool) == [reason]


async def test_a_recreated_topic_under_a_running_member_is_detected(
    infra: object, pool: asyncpg.Pool, publisher: EventPublisher, unique: str
) -> None:
    """The client resets its position by itself (offset out of range): caught, not trusted."""
    bootstrap: str = infra.kafka_bootstrap  # type: ignore[attr-defined]
    topic = f"test.recreated.live.{unique}"
    dlq = replace(DEAD_LETTER, name=f"test.recreated.live.dlq.{unique}")
    await ensure_topics(bootstrap, [replace(BOOKINGS, name=topic, partitions=1), dlq])
    for n in range(10):
        await publisher.publish(booking(n, key=0), topic=topic)
    # The member notices the new topic at its next metadata refresh (default: 5 minutes).
    runner = runner_for(
        infra,
        pool,
        publisher,
        (topic, dlq.name),
        f"g-{unique}",
        extra={"metadata_max_age_ms": 1000},
    )
    async with running(runner) as task:
        await eventually(lambda: _at_least(applied_count(pool), 10))
        await _recreate_topic(bootstrap, topic, partitions=1)
        for n in range(100, 103):
            await publisher.publish(booking(n, key=0), topic=topic)
        await eventually(lambda: _at_least(applied_count(pool), 13), timeout_s=90)
        assert not task.done()
    assert await duplicates(pool) == 0
    assert await _resets(pool) in (
        ["client_reset"],
        ["ahead_of_log_end"],
        ["client_reset", "ahead_of_log_end"],
    )


# -- per-partition backoff ------------------------------------------------------------------


async def test_a_failing_partition_backs_off_alone_and_holds_no_lock_while_it_waits(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
) -> None:
    topic, dlq = topics
    group = f"g-{unique}"
    bad_key = key_on_partition(0, 4)
    good_key = key_on_partition(1, 4)
    attempts = 0
    retrying = asyncio.Event()

    async def fails_on_bad_key(conn: Connection, message: Message) -> None:
        nonlocal attempts
        assert isinstance(message, ConsumedEvent)
        data = message.envelope.data
        assert isinstance(data, BookingConfirmed)
        if data.booking_id == booking(1, key=bad_key).booking_id and data.version == 3:  # booking 2
            attempts += 1
            retrying.set()
            raise ValueError("cannot apply")
        await record(conn, message)

    runner = runner_for(
        infra, pool, publisher, topics, group, fails_on_bad_key, retry_backoff_s=1.5
    )
    for n in (1, 2, 3):
        await publisher.publish(booking(n, key=bad_key), topic=topic)
    async with running(runner):
        await retrying.wait()
        # While partition 0 waits for its retry: the records before the failing one are
        # committed, its offset row is free, and another partition flows. (The first failure
        # is met by the whole batch, which is rolled back and applied again record by record:
        # the record before it commits a moment after.)

        async def stored() -> int | None:
            return await pool.fetchval(  # type: ignore[no-any-return]
                "SELECT next_offset FROM kafka_consumer_offsets"
                " WHERE group_id = $1 AND partition = 0",
                group,
            )

        await eventually(lambda: _equals(stored(), 1), timeout_s=5)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '200ms'")
            await conn.fetchval(
                "SELECT next_offset FROM kafka_consumer_offsets WHERE group_id = $1"
                " AND partition = 0 FOR UPDATE",
                group,
            )
        for n in range(1, 6):
            await publisher.publish(booking(n, key=good_key), topic=topic)
        await eventually(lambda: _at_least(applied_count(pool), 6), timeout_s=10)
        assert attempts < 3, "the healthy partition did not wait for the failing one"
        await eventually(lambda: _at_least(applied_count(pool), 7), timeout_s=30)
    assert attempts == 3  # then dead-lettered, and booking 3 after it applied
    reader = AIOKafkaConsumer(
        dlq, bootstrap_servers=infra.kafka_bootstrap, auto_offset_reset="earliest"
    )  # type: ignore[attr-defined]
    await reader.start()
    try:
        async with asyncio.timeout(20):
            batch: dict[Any, Any] = {}
            while not batch:
                batch = await reader.getmany(timeout_ms=300)
    finally:
        await reader.stop()
    (dead,) = [r for rs in batch.values() for r in rs]
    assert dict(dead.headers)["x-dlq-attempts"] == b"3"


# -- a bug ends the loop, loudly ------------------------------------------------------------

RUNNER = web.AppKey("runner", ConsumerRunner)


async def test_a_bug_in_the_loop_fails_health_and_readiness(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
) -> None:
    runner = runner_for(infra, pool, publisher, topics, f"g-{unique}")

    async def bug() -> None:
        raise TypeError("a programming error")

    runner._tend_partitions = bug  # type: ignore[method-assign]

    def checks(app: web.Application) -> dict[str, Callable[[], Awaitable[None]]]:
        return {"consumer": app[RUNNER].ready}

    app = new_app(checks)
    app.cleanup_ctx.append(consumer_ctx(RUNNER, lambda _: runner))
    async with TestClient(TestServer(app)) as client:
        await eventually(lambda: _status_is(client, "/healthz", 503), timeout_s=10)
        assert app[FATAL] == [f"consumer g-{unique}: TypeError"]
        assert (await client.get("/readyz")).status == 503


async def _status_is(client: TestClient[Any, Any], path: str, status: int) -> bool:
    return (await client.get(path)).status == status


# -- contracts on the wire: tolerant readers, tombstones, duplicates ------------------------


async def test_an_event_with_a_field_this_consumer_does_not_know_is_applied(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
) -> None:
    topic, _ = topics
    message = encode(booking(1), source="/calsync/newer-producer")
    data = json.loads(message.value)
    data["added_in_a_later_release"] = {"nested": True}
    await publisher.send_raw(
        topic, message.key.encode(), json.dumps(data).encode(), list(message.headers.items())
    )
    async with running(runner_for(infra, pool, publisher, topics, f"g-{unique}")):
        await eventually(lambda: _at_least(applied_count(pool), 1), timeout_s=30)
    payload = json.loads(await pool.fetchval("SELECT payload FROM applied"))
    assert payload["title"] == "booking 1"
    assert "added_in_a_later_release" not in payload


async def test_tombstones_reach_the_handler_and_duplicates_by_sequence_do_not(
    infra: object, pool: asyncpg.Pool, publisher: EventPublisher, unique: str
) -> None:

    bootstrap: str = infra.kafka_bootstrap  # type: ignore[attr-defined]
    topic = replace(CONNECTIONS, name=f"test.connections.{unique}")
    dlq = replace(DEAD_LETTER, name=f"test.connections.dlq.{unique}")
    await ensure_topics(bootstrap, [topic, dlq])
    snapshot = next(e for e in examples() if isinstance(e, ConnectionSnapshot))
    uow = unit_of_work(pool, "/calsync/connector")
    async with uow() as work:
        await work.outbox.add(snapshot, topic=topic.name)
        await work.outbox.add(snapshot.model_copy(update={"version": 4}), topic=topic.name)
    async with uow() as work:
        await work.outbox.tombstone(topic.name, str(CONN))
    seen: list[str] = []

    async def handler(conn: Connection, message: Message) -> None:
        if isinstance(message, ConsumedTombstone):
            seen.append(f"tombstone {message.tombstone.key} #{message.tombstone.sequence}")
        else:
            data = message.envelope.data
            assert isinstance(data, ConnectionSnapshot)
            seen.append(f"snapshot v{data.version} #{message.envelope.sequence}")

    # Publish every outbox row twice, as a relay whose deletes were lost would.
    rows = await pool.fetch("SELECT key, headers, value FROM outbox ORDER BY id")
    for _ in range(2):
        for row in rows:
            headers = [(k, v.encode("latin-1")) for k, v in json.loads(row["headers"])]
            await publisher.send_raw(topic.name, row["key"].encode(), row["value"], headers)
    runner = runner_for(infra, pool, publisher, (topic.name, dlq.name), f"g-{unique}", handler)
    async with running(runner):
        await eventually(lambda: _offsets_reach(pool, 6), timeout_s=30)
    assert seen == ["snapshot v3 #1", "snapshot v4 #2", f"tombstone {CONN} #3"]


async def _offsets_reach(pool: asyncpg.Pool, wanted: int) -> bool:
    total = await pool.fetchval(
        "SELECT coalesce(sum(next_offset), 0) FROM kafka_consumer_offsets WHERE next_offset > 0"
    )
    return int(total) >= wanted


async def test_a_process_whose_loop_died_exits_non_zero(
    infra: object, fresh_database: str, unique: str
) -> None:
    """Under ``runtime.run`` a fatal failure stops the server gracefully and the process exits
    with status 70, so its supervisor restarts it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "fatal_process.py"),
        infra.kafka_bootstrap,  # type: ignore[attr-defined]
        fresh_database,
        f"test.fatal.{unique}",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    assert proc.returncode == 70
    assert b"fatal failure" in out
