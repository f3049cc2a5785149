"""Producer and consumer runner against the real broker and database (integration)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from calsync_common.contracts.bookings import BookingConfirmed
from calsync_common.contracts.envelope import encode
from calsync_common.contracts.examples import examples
from calsync_common.contracts.topics import BOOKINGS, DEAD_LETTER
from calsync_common.kafka.admin import ensure_topics
from calsync_common.kafka.consumer import ConsumedEvent, ConsumerConfig, ConsumerRunner, Message
from calsync_common.kafka.producer import EventPublisher
from calsync_common.postgres import Connection
from calsync_common.testing import connection, eventually, running

pytestmark = pytest.mark.integration
BOOKING = next(e for e in examples() if isinstance(e, BookingConfirmed))


async def record(conn: Connection, event: Message) -> None:
    assert isinstance(event, ConsumedEvent)
    await conn.execute(
        "INSERT INTO applied (event_id, offset_no, payload) VALUES ($1, $2, $3)",
        event.envelope.id,
        event.offset,
        event.envelope.data.model_dump_json(),
    )


async def count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM applied"))


@pytest.fixture
async def topics(infra: object, unique: str) -> tuple[str, str]:
    main = replace(BOOKINGS, name=f"test.bookings.{unique}", partitions=2)
    dlq = replace(DEAD_LETTER, name=f"test.dlq.{unique}")
    await ensure_topics(infra.kafka_bootstrap, [main, dlq])  # type: ignore[attr-defined]
    return main.name, dlq.name


def booking(n: int) -> BookingConfirmed:
    return BOOKING.model_copy(update={"title": f"booking {n}", "version": n})


async def test_round_trip_applies_each_event_once_with_trace_context(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
) -> None:
    topic, dlq = topics
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())  # spans need an SDK provider to carry ids
    tracer = trace.get_tracer("test")
    seen_traces: list[int] = []

    async def handler(conn: Connection, event: Message) -> None:
        assert isinstance(event, ConsumedEvent)
        seen_traces.append(trace.get_current_span().get_span_context().trace_id)
        await record(conn, event)

    with tracer.start_as_current_span("producer-side") as producer_span:
        for n in range(1, 21):
            await publisher.publish(booking(n), topic=topic)
    config = ConsumerConfig(group_id=f"g-{unique}", topics=[topic], dead_letter_topic=dlq)
    runner = ConsumerRunner(
        infra.kafka_bootstrap, config, pool, handler, publisher, bind=connection
    )  # type: ignore[attr-defined]
    async with running(runner):
        await eventually(lambda: _eq(count(pool), 20))
    rows = await pool.fetch("SELECT payload FROM applied")
    titles = sorted(json.loads(r["payload"])["title"] for r in rows)
    assert titles == sorted(f"booking {n}" for n in range(1, 21))
    stored = await pool.fetchval(
        "SELECT sum(next_offset) FROM kafka_consumer_offsets"
        " WHERE group_id = $1 AND next_offset >= 0",
        f"g-{unique}",
    )
    assert stored == 20
    # Each handler ran inside the producer's trace (W3C context carried in the headers).
    assert seen_traces == [producer_span.get_span_context().trace_id] * 20


async def test_the_partitions_of_a_poll_are_applied_side_by_side(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
) -> None:
    """Each partition's first record waits until the other partition's first record is being
    applied. Applied one partition after the other, the first to run would wait out its timeout
    alone (and fail); applied side by side, both meet."""
    topic, dlq = topics
    reached = {0: asyncio.Event(), 1: asyncio.Event()}
    met: list[int] = []

    async def handler(conn: Connection, event: Message) -> None:
        assert isinstance(event, ConsumedEvent)
        mine = event.partition
        if not reached[mine].is_set():
            reached[mine].set()
            async with asyncio.timeout(10):
                await reached[1 - mine].wait()
            met.append(mine)
        await record(conn, event)

    for n in range(1, 21):  # 20 keys: both partitions get some (all before the runner starts)
        await publisher.publish(
            booking(n).model_copy(update={"booking_id": uuid.UUID(int=n)}), topic=topic
        )
    config = ConsumerConfig(group_id=f"g-{unique}", topics=[topic], dead_letter_topic=dlq)
    runner = ConsumerRunner(
        infra.kafka_bootstrap,  # type: ignore[attr-defined]
        config,
        pool,
        handler,
        publisher,
        bind=connection,
    )
    async with running(runner):
        await eventually(lambda: _eq(count(pool), 20), timeout_s=30)
    assert sorted(met) == [0, 1]


async def _eq(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_consumer_killed_between_database_and_kafka_commit_applies_nothing_twice(
    infra: object,
    fresh_database: str,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
) -> None:
    topic, dlq = topics
    bootstrap: str = infra.kafka_bootstrap  # type: ignore[attr-defined]
    for n in range(1, 11):
        await publisher.publish(booking(n), topic=topic)
    # A real process, SIGKILLed by its own hook right after the database commit.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("consumer_process.py")),
        *(bootstrap, fresh_database, topic, dlq, f"g-{unique}"),
    )
    async with asyncio.timeout(60):
        assert await proc.wait() == -signal.SIGKILL
    config = ConsumerConfig(group_id=f"g-{unique}", topics=[topic], dead_letter_topic=dlq)
    applied_before = await count(pool)
    assert applied_before > 0
    # Kafka knows of no committed offset for the group: only PostgreSQL does.
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=f"g-{unique}")
    await probe.start()
    try:
        committed = [await probe.committed(TopicPartition(topic, p)) for p in (0, 1)]
    finally:
        await probe.stop()
    assert committed == [None, None]

    for n in range(11, 16):
        await publisher.publish(booking(n), topic=topic)
    restarted = ConsumerRunner(bootstrap, config, pool, record, publisher, bind=connection)
    async with running(restarted):
        await eventually(lambda: _eq(count(pool), 15), timeout_s=60)
    duplicates = await pool.fetchval(
        "SELECT count(*) FROM"
        " (SELECT event_id FROM applied GROUP BY event_id HAVING count(*) > 1) d"
    )
    assert duplicates == 0
    assert await count(pool) == 15


async def test_poison_messages_go_to_the_dead_letter_topic_and_the_consumer_keeps_going(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
) -> None:
    topic, dlq = topics
    attempts: dict[str, int] = {}

    async def handler(conn: Connection, event: Message) -> None:
        assert isinstance(event, ConsumedEvent)
        assert isinstance(event.envelope.data, BookingConfirmed)
        if event.envelope.data.title == "booking 2":
            attempts[event.envelope.id] = attempts.get(event.envelope.id, 0) + 1
            await conn.execute("INSERT INTO applied VALUES ('partial', -1, '{}')")
            raise ValueError("cannot apply booking 2")
        await record(conn, event)

    # All on one key, so order within the partition is known: 1, poison, 2 (fails), 3.
    await publisher.publish(booking(1), topic=topic)
    await publisher.send_raw(topic, BOOKING.partition_key().encode(), b"not a cloudevent", [])
    await publisher.publish(booking(2), topic=topic)
    await publisher.publish(booking(3), topic=topic)
    config = ConsumerConfig(
        group_id=f"g-{unique}",
        topics=[topic],
        dead_letter_topic=dlq,
        max_attempts=3,
        retry_backoff_s=0.01,
    )
    runner = ConsumerRunner(
        infra.kafka_bootstrap, config, pool, handler, publisher, bind=connection
    )  # type: ignore[attr-defined]
    async with running(runner):
        await eventually(lambda: _eq(count(pool), 2))

    titles = sorted(
        json.loads(r["payload"])["title"] for r in await pool.fetch("SELECT payload FROM applied")
    )
    assert titles == ["booking 1", "booking 3"]  # no trace of the failed attempts (savepoints)
    assert list(attempts.values()) == [3]

    reader = AIOKafkaConsumer(
        dlq, bootstrap_servers=infra.kafka_bootstrap, auto_offset_reset="earliest"
    )  # type: ignore[attr-defined]
    await reader.start()
    try:
        dead = []
        async with asyncio.timeout(30):
            while len(dead) < 2:
                batch = await reader.getmany(timeout_ms=500)
                dead.extend(r for records in batch.values() for r in records)
    finally:
        await reader.stop()
    by_value = {r.value: dict(r.headers) for r in dead}
    assert by_value[b"not a cloudevent"]["x-dlq-attempts"] == b"0"
    assert by_value[b"not a cloudevent"]["x-dlq-topic"] == topic.encode()
    poisoned = next(h for v, h in by_value.items() if v != b"not a cloudevent")
    assert poisoned["x-dlq-attempts"] == b"3"
    assert poisoned["x-dlq-error"].startswith(b"ValueError: cannot apply booking 2")
    assert poisoned["ce_type"] == b"dev.calsync.booking.confirmed.v1"


async def test_dependency_down_re_reads_the_batch_and_applies_each_event_once_in_order(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
) -> None:
    from calsync_common.transient import RetryLater

    topic, dlq = topics
    failures_left = 3

    async def flaky(conn: Connection, event: Message) -> None:
        assert isinstance(event, ConsumedEvent)
        nonlocal failures_left
        assert isinstance(event.envelope.data, BookingConfirmed)
        if event.envelope.data.title == "booking 4" and failures_left:
            failures_left -= 1
            raise RetryLater("calendar service unavailable")
        await record(conn, event)

    for n in range(1, 8):  # one key: one partition, known order
        await publisher.publish(booking(n), topic=topic)
    config = ConsumerConfig(
        group_id=f"g-{unique}", topics=[topic], dead_letter_topic=dlq, retry_backoff_s=0.01
    )
    runner = ConsumerRunner(infra.kafka_bootstrap, config, pool, flaky, publisher, bind=connection)  # type: ignore[attr-defined]
    async with running(runner):
        await eventually(lambda: _eq(count(pool), 7))
    rows = await pool.fetch("SELECT payload FROM applied ORDER BY offset_no")
    assert [json.loads(r["payload"])["title"] for r in rows] == [
        f"booking {n}" for n in range(1, 8)
    ]
    assert failures_left == 0


# -- batch mode ----------------------------------------------------------------------------------


async def publish_sequenced(
    publisher: EventPublisher, topic: str, payload: BookingConfirmed, sequence: int
) -> None:
    """As the outbox relay sends: a ``ce_sequence`` per key (same id for a re-send)."""
    message = encode(
        payload,
        source="/calsync/test",
        sequence=sequence,
        event_id=f"{payload.partition_key()}-{sequence}",
    )
    await publisher.send_raw(
        topic, payload.partition_key().encode(), message.value, list(message.headers.items())
    )


async def test_a_batch_handler_applies_runs_of_records_once_dropping_repeated_sequences(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
) -> None:
    topic, dlq = topics
    calls: list[int] = []

    async def batch(conn: Connection, events: Sequence[Message]) -> None:
        calls.append(len(events))
        for event in events:
            await record(conn, event)

    async def one(conn: Connection, event: Message) -> None:
        await batch(conn, [event])

    keys = [uuid.UUID(int=k) for k in range(1, 4)]
    for seq in range(1, 11):
        for key in keys:
            payload = BOOKING.model_copy(update={"booking_id": key, "title": f"{key.int}:{seq}"})
            await publish_sequenced(publisher, topic, payload, seq)
            if seq % 3 == 0:  # relayed twice, and an older one arriving late
                await publish_sequenced(publisher, topic, payload, seq)
                old = payload.model_copy(update={"title": f"{key.int}:{seq - 1}"})
                await publish_sequenced(publisher, topic, old, seq - 1)
    config = ConsumerConfig(group_id=f"g-{unique}", topics=[topic], dead_letter_topic=dlq)
    runner = ConsumerRunner(
        infra.kafka_bootstrap,  # type: ignore[attr-defined]
        config,
        pool,
        one,
        publisher,
        bind=connection,
        batch_handler=batch,
    )
    async with running(runner):
        await eventually(lambda: _eq(count(pool), 30))
        await asyncio.sleep(0.5)  # the duplicates after the last new record are consumed too
    rows = await pool.fetch("SELECT payload FROM applied ORDER BY offset_no")
    titles = [json.loads(r["payload"])["title"] for r in rows]
    assert len(titles) == 30
    for key in keys:  # each key's records once, in order
        assert [t for t in titles if t.startswith(f"{key.int}:")] == [
            f"{key.int}:{seq}" for seq in range(1, 11)
        ]
    assert max(calls) > 1  # whole runs reached the batch handler


async def test_a_failing_record_of_a_batch_is_retried_alone_and_dead_lettered(
    infra: object,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topics: tuple[str, str],
    unique: str,
) -> None:
    topic, dlq = topics
    one_by_one: list[str] = []

    async def one(conn: Connection, event: Message) -> None:
        assert isinstance(event, ConsumedEvent)
        assert isinstance(event.envelope.data, BookingConfirmed)
        one_by_one.append(event.envelope.data.title)
        if event.envelope.data.title == "booking 3":
            raise ValueError("cannot apply booking 3")
        await record(conn, event)

    async def batch(conn: Connection, events: Sequence[Message]) -> None:
        for event in events:  # writes first, then fails: the savepoint must undo them
            await record(conn, event)
        if any(
            isinstance(e, ConsumedEvent)
            and isinstance(e.envelope.data, BookingConfirmed)
            and e.envelope.data.title == "booking 3"
            for e in events
        ):
            raise ValueError("the batch holds booking 3")

    for n in range(1, 6):
        await publish_sequenced(publisher, topic, booking(n), n)
    config = ConsumerConfig(
        group_id=f"g-{unique}",
        topics=[topic],
        dead_letter_topic=dlq,
        max_attempts=2,
        retry_backoff_s=0.01,
    )
    runner = ConsumerRunner(
        infra.kafka_bootstrap,  # type: ignore[attr-defined]
        config,
        pool,
        one,
        publisher,
        bind=connection,
        batch_handler=batch,
    )
    async with running(runner):
        await eventually(lambda: _eq(count(pool), 4))
    titles = sorted(
        json.loads(r["payload"])["title"] for r in await pool.fetch("SELECT payload FROM applied")
    )
    assert titles == ["booking 1", "booking 2", "booking 4", "booking 5"]
    assert one_by_one.count("booking 3") == 2  # retried alone, then dead-lettered
    reader = AIOKafkaConsumer(
        dlq,
        bootstrap_servers=infra.kafka_bootstrap,  # type: ignore[attr-defined]
        auto_offset_reset="earliest",
    )
    await reader.start()
    try:
        async with asyncio.timeout(30):
            dead: list[object] = []
            while not dead:
                got = await reader.getmany(timeout_ms=500)
                dead.extend(r for records in got.values() for r in records)
    finally:
        await reader.stop()
    assert len(dead) == 1
