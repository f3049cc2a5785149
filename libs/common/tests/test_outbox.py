"""The transactional outbox and its relay, on the real database and broker (integration).

One contract suite runs against the PostgreSQL outbox and the in-memory fake, so service tests that
use the fake rely on the same promises. The relay tests read the topic back with a plain consumer
and check what a consumer that keeps the last sequence per key would see: every event, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol
from uuid import uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from calsync_common.contracts.bookings import BookingConfirmed
from calsync_common.contracts.envelope import decode_record
from calsync_common.contracts.examples import examples
from calsync_common.contracts.topics import BOOKINGS, CONNECTIONS, DEAD_LETTER
from calsync_common.fakes import FakeUnitOfWork
from calsync_common.kafka.admin import ensure_topics
from calsync_common.kafka.consumer import ConsumedEvent, ConsumerConfig, ConsumerRunner, Message
from calsync_common.kafka.producer import EventPublisher
from calsync_common.outbox.relay import OutboxRelay, RelayConfig
from calsync_common.outbox.store import BUCKETS, event_id_for
from calsync_common.ports import OutboxEntry, UnitOfWork, Work
from calsync_common.postgres import Connection
from calsync_common.postgres.uow import unit_of_work
from calsync_common.testing import eventually, local_infra

pytestmark = pytest.mark.integration
SOURCE = "/calsync/test"
BOOKING = next(e for e in examples() if isinstance(e, BookingConfirmed))


def booking(key: int, n: int) -> BookingConfirmed:
    booking_id = BOOKING.booking_id.int + key
    return BOOKING.model_copy(
        update={"booking_id": type(BOOKING.booking_id)(int=booking_id), "version": n}
    )


# -- the contract both outboxes keep ---------------------------------------------------------


class Committed(Protocol):
    async def __call__(self) -> list[OutboxEntry]: ...


@pytest.fixture(params=["postgres", "fake"])
async def outbox_under_test(
    request: pytest.FixtureRequest, pool: asyncpg.Pool
) -> tuple[UnitOfWork[Work], Committed]:
    if request.param == "fake":
        fake = FakeUnitOfWork(SOURCE)

        async def fake_committed() -> list[OutboxEntry]:
            return [m.entry for m in fake.published]

        return fake, fake_committed

    async def pg_committed() -> list[OutboxEntry]:
        rows = await pool.fetch("SELECT topic, key, sequence, event_id FROM outbox ORDER BY id")
        return [OutboxEntry(r["topic"], r["key"], r["sequence"], r["event_id"]) for r in rows]

    return unit_of_work(pool, SOURCE), pg_committed


async def test_an_autocommit_work_has_no_outbox_to_use(
    outbox_under_test: tuple[UnitOfWork[Work], Committed],
) -> None:
    """Outside a transaction nothing could commit an event with its change: refused, by the
    fake as by PostgreSQL's unit of work, and nothing is published."""
    uow, committed = outbox_under_test
    async with uow.autocommit() as work:
        with pytest.raises(RuntimeError, match="needs a transaction"):
            await work.outbox.add(booking(1, 1))
        with pytest.raises(RuntimeError, match="needs a transaction"):
            await work.outbox.add_many([booking(1, 1)])
    assert await committed() == []


async def test_outbox_contract_sequences_ids_and_atomicity(
    outbox_under_test: tuple[UnitOfWork[Work], Committed],
) -> None:
    uow, committed = outbox_under_test
    async with uow() as work:
        first = await work.outbox.add(booking(1, 1))
        second = await work.outbox.add(booking(1, 2))
        other = await work.outbox.add(booking(2, 1))
    assert (first.sequence, second.sequence, other.sequence) == (1, 2, 1)
    key = booking(1, 1).partition_key()
    assert first.event_id == event_id_for(SOURCE, BOOKINGS.name, key, 1)
    assert second.event_id != first.event_id

    async def abandoned_change() -> None:
        async with uow() as work:
            await work.outbox.add(booking(1, 3))
            raise RuntimeError("abandoned")

    with pytest.raises(RuntimeError, match="abandoned"):
        await abandoned_change()
    async with uow() as work:
        after_rollback = await work.outbox.add(booking(1, 3))
    # The rolled-back event took no sequence and left no row.
    assert after_rollback.sequence == 3
    assert [e.sequence for e in await committed() if e.key == key] == [1, 2, 3]

    async with uow() as work:
        with pytest.raises(ValueError, match="not compacted"):
            await work.outbox.tombstone(BOOKINGS.name, key)
        erased = await work.outbox.tombstone(CONNECTIONS.name, "c-1")
    assert erased.sequence == 1


async def test_add_many_of_new_keys_starts_each_at_one_and_refuses_a_used_key(
    outbox_under_test: tuple[UnitOfWork[Work], Committed],
) -> None:
    uow, committed = outbox_under_test
    key7, key8 = booking(7, 1).partition_key(), booking(8, 1).partition_key()
    async with uow() as work:
        entries = await work.outbox.add_many(
            [booking(7, 1), booking(8, 1), booking(7, 2)], new_keys=True
        )
    assert [(e.key, e.sequence) for e in entries] == [(key7, 1), (key8, 1), (key7, 2)]
    assert entries[2].event_id == event_id_for(SOURCE, BOOKINGS.name, key7, 2)
    async with uow() as work:  # the keys' later events go on from there
        assert (await work.outbox.add(booking(7, 3))).sequence == 3
    with pytest.raises((ValueError, asyncpg.UniqueViolationError)):
        async with uow() as work:  # never a sequence used twice: the call fails, nothing kept
            await work.outbox.add_many([booking(8, 2)], new_keys=True)
    assert [(e.key, e.sequence) for e in await committed()] == [
        (key7, 1),
        (key8, 1),
        (key7, 2),
        (key7, 3),
    ]


async def test_add_many_numbers_keys_as_add_would_in_one_go(
    outbox_under_test: tuple[UnitOfWork[Work], Committed],
) -> None:
    uow, committed = outbox_under_test
    async with uow() as work:
        await work.outbox.add(booking(1, 1))
    async with uow() as work:
        entries = await work.outbox.add_many([booking(1, 2), booking(2, 1), booking(1, 3)])
        assert await work.outbox.add_many([]) == []
    key1, key2 = booking(1, 1).partition_key(), booking(2, 1).partition_key()
    assert [(e.key, e.sequence) for e in entries] == [(key1, 2), (key2, 1), (key1, 3)]
    assert entries[0].event_id == event_id_for(SOURCE, BOOKINGS.name, key1, 2)
    assert [(e.key, e.sequence) for e in await committed()] == [
        (key1, 1),
        (key1, 2),
        (key2, 1),
        (key1, 3),
    ]


# -- the relay ------------------------------------------------------------------------------


@pytest.fixture
async def topic(infra: object, unique: str) -> str:
    main = replace(BOOKINGS, name=f"test.outbox.{unique}", partitions=3)
    await ensure_topics(infra.kafka_bootstrap, [main])  # type: ignore[attr-defined]
    return main.name


@contextlib.asynccontextmanager
async def relaying(relay: OutboxRelay) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(relay.run())
    try:
        yield task
    finally:
        relay.request_stop()
        async with asyncio.timeout(15):
            await task


def make_relay(
    fresh_database: str,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    unique: str,
    *,
    batch_size: int = 500,
    after_publish: Callable[[], Awaitable[None]] | None = None,
) -> OutboxRelay:
    return OutboxRelay(
        fresh_database,
        pool,
        publisher,
        service=f"test-{unique}",
        config=RelayConfig(batch_size=batch_size, idle_poll_s=0.2),
        after_publish=after_publish,
    )


async def write_events(pool: asyncpg.Pool, topic: str, keys: int, per_key: int) -> None:
    uow = unit_of_work(pool, SOURCE)
    for n in range(1, per_key + 1):  # interleaved keys, one transaction per change
        for key in range(keys):
            async with uow() as work:
                await work.outbox.add(booking(key, n), topic=topic)


async def read_topic(bootstrap: str, topic: str, expected: int) -> list[ConsumerRecord]:
    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await reader.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < expected:
                batch = await reader.getmany(timeout_ms=300)
                records.extend(r for rs in batch.values() for r in rs)
        # Anything more would be duplicates: take what is there a moment later as well.
        batch = await reader.getmany(timeout_ms=500)
        records.extend(r for rs in batch.values() for r in rs)
    finally:
        await reader.stop()
    return records


async def unsent(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox"))


def as_seen_by_a_deduplicating_consumer(records: list[ConsumerRecord]) -> dict[str, list[int]]:
    """Per key, the sequences a consumer applies when it drops what is not above its last one;
    fails on a gap (a sequence skipped: an event would be lost) or on a missing sequence."""
    records = sorted(records, key=lambda r: (r.partition, r.offset))
    applied: dict[str, list[int]] = defaultdict(list)
    for record in records:
        decoded = decode_record(list(record.headers), record.key, record.value)
        assert decoded.sequence is not None
        key = record.key.decode()
        last = applied[key][-1] if applied[key] else 0
        if decoded.sequence > last:
            assert decoded.sequence == last + 1, f"gap on {key}: {last} -> {decoded.sequence}"
            applied[key].append(decoded.sequence)
    return applied


async def test_relay_publishes_every_event_in_key_order_with_deterministic_ids(
    infra: object,
    fresh_database: str,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topic: str,
    unique: str,
) -> None:
    await write_events(pool, topic, keys=4, per_key=15)
    relay = make_relay(fresh_database, pool, publisher, unique)
    async with relaying(relay):
        records = await read_topic(infra.kafka_bootstrap, topic, 60)  # type: ignore[attr-defined]
        assert relay.owned_buckets == frozenset(range(BUCKETS))
    assert len(records) == 60
    assert all(
        seqs == list(range(1, 16)) for seqs in as_seen_by_a_deduplicating_consumer(records).values()
    )
    for record in records:
        decoded = decode_record(list(record.headers), record.key, record.value)
        assert decoded.id == event_id_for(SOURCE, topic, record.key.decode(), decoded.sequence)
    assert await unsent(pool) == 0


async def test_order_per_key_holds_across_relay_restarts_and_lost_deletes(
    infra: object,
    fresh_database: str,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topic: str,
    unique: str,
) -> None:
    await write_events(pool, topic, keys=3, per_key=20)
    rounds = 0

    async def lose_the_deletes_of_the_second_round() -> None:
        # The broker has the batch; the relay "dies" before deleting it.
        nonlocal rounds
        rounds += 1
        if rounds == 2:
            raise ConnectionResetError("relay died after publishing")

    first = make_relay(
        fresh_database,
        pool,
        publisher,
        unique,
        batch_size=7,
        after_publish=lose_the_deletes_of_the_second_round,
    )
    await first.claim_buckets()  # one round at a time, by hand
    assert await first.relay_once() == 7
    with pytest.raises(ConnectionResetError):
        await first.relay_once()
    await first.close()

    second = make_relay(fresh_database, pool, publisher, unique, batch_size=7)
    async with relaying(second):
        records = await read_topic(infra.kafka_bootstrap, topic, 60 + 7)  # type: ignore[attr-defined]
    assert len(records) == 67  # the batch whose deletes were lost went out twice
    applied = as_seen_by_a_deduplicating_consumer(records)
    assert applied == {k: list(range(1, 21)) for k in applied}
    assert len(applied) == 3


async def test_the_relay_goes_on_when_its_own_connection_is_killed_under_load(
    infra: object,
    fresh_database: str,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topic: str,
    unique: str,
) -> None:
    """The relay reads and deletes on the connection that holds its buckets. Killed (a restart,
    a failover, an idle timeout) while events keep coming, it reconnects, takes its buckets
    again and relays everything: no key loses an event or sees one out of order."""
    relay = make_relay(fresh_database, pool, publisher, unique, batch_size=5)
    killed = 0

    async def drained() -> bool:
        return await unsent(pool) == 0

    async with relaying(relay):
        writer = asyncio.create_task(write_events(pool, topic, keys=4, per_key=150))
        while not writer.done():
            conn = relay._lock_conn
            if conn is not None and not conn.is_closed():
                pid = conn.get_server_pid()
                killed += bool(await pool.fetchval("SELECT pg_terminate_backend($1)", pid))
            await asyncio.sleep(0.05)
        await writer
        await eventually(drained, timeout_s=30)
    # Nothing is left to send, so all 600 are on the topic; re-sent batches come on top.
    sent = 600
    reader = AIOKafkaConsumer(
        topic,
        bootstrap_servers=infra.kafka_bootstrap,  # type: ignore[attr-defined]
        auto_offset_reset="earliest",
    )
    await reader.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(30):
            while len({(r.key, dict(r.headers)["ce_sequence"]) for r in records}) < sent:
                batch = await reader.getmany(timeout_ms=300)
                records.extend(r for rs in batch.values() for r in rs)
    finally:
        await reader.stop()
    assert killed >= 3  # the relay's session really died several times mid-stream
    applied = as_seen_by_a_deduplicating_consumer(records)
    assert applied == {k: list(range(1, 151)) for k in applied}
    assert len(applied) == 4


async def test_relaying_twice_is_harmless_to_a_consumer(
    infra: object,
    fresh_database: str,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topic: str,
    unique: str,
) -> None:
    bootstrap: str = infra.kafka_bootstrap  # type: ignore[attr-defined]
    await write_events(pool, topic, keys=2, per_key=10)
    cuts = 0

    async def cut_once() -> None:  # the broker acked; the delete is lost (a crash, a cut)
        nonlocal cuts
        cuts += 1
        if cuts == 1:
            raise ConnectionResetError("cut between the ack and the delete")

    relay = make_relay(fresh_database, pool, publisher, unique, after_publish=cut_once)
    await relay.claim_buckets()
    with pytest.raises(ConnectionResetError):
        await relay.relay_once()
    assert await unsent(pool) == 20  # sent, yet still queued
    assert await relay.relay_once() == 20  # so all of it is sent again
    assert await unsent(pool) == 0
    await relay.close()

    async def record(conn: Connection, message: Message) -> None:
        assert isinstance(message, ConsumedEvent)
        await conn.execute(
            "INSERT INTO applied VALUES ($1, $2, $3)",
            message.envelope.id,
            message.offset,
            message.envelope.data.model_dump_json(),
        )

    dlq = replace(DEAD_LETTER, name=f"test.outbox.dlq.{unique}")
    await ensure_topics(bootstrap, [dlq])
    config = ConsumerConfig(group_id=f"g-{unique}", topics=[topic], dead_letter_topic=dlq.name)
    runner = ConsumerRunner(bootstrap, config, pool, record, publisher, bind=lambda c: c)
    await runner.start()
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(30):
            # Polls the database (no event to wait on), bounded by the timeout.
            while (  # noqa: ASYNC110
                await pool.fetchval(
                    "SELECT sum(next_offset) FROM kafka_consumer_offsets WHERE next_offset > 0"
                )
                != 40
            ):
                await asyncio.sleep(0.1)
    finally:
        runner.request_stop()
        await task
        await runner.close()
    rows = await pool.fetch("SELECT event_id FROM applied")
    assert len(rows) == 20
    assert len({r["event_id"] for r in rows}) == 20


async def test_state_committed_then_sigkill_before_the_relay_loses_nothing(
    infra: object,
    fresh_database: str,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topic: str,
    unique: str,
) -> None:
    """A real process commits a state change with its event and dies at once (SIGKILL), before
    any relay runs; another process's relay publishes the event. A second process is killed by
    its own relay between the broker's ack and the delete: its batch is re-sent, not lost."""
    script = str(Path(__file__).with_name("outbox_process.py"))
    bootstrap: str = infra.kafka_bootstrap  # type: ignore[attr-defined]
    for mode in ("commit-then-die", "relay-then-die"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, script, mode, bootstrap, fresh_database, topic, unique
        )
        async with asyncio.timeout(60):
            assert await proc.wait() == -signal.SIGKILL
    state = await pool.fetchval("SELECT count(*) FROM outbox")
    assert state == 10  # 5 events per process, all committed with their state
    relay = make_relay(fresh_database, pool, publisher, unique)
    async with relaying(relay):
        records = await read_topic(bootstrap, topic, 20)
    # The killed relay got all 10 to the broker and deleted none; the new relay sends all again.
    assert len(records) == 20
    applied = as_seen_by_a_deduplicating_consumer(records)
    assert sorted(len(v) for v in applied.values()) == [5, 5]


@pytest.mark.skipif(
    not os.environ.get("CALSYNC_LOCAL_INFRA"),
    reason="restarts the broker: only on the local stack that make test starts",
)
async def test_the_relay_waits_out_a_stopped_broker_and_then_sends_every_key_in_order(
    infra: object,
    fresh_database: str,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    topic: str,
    unique: str,
) -> None:
    """Rows written while the broker is stopped stay unsent (publishes fail; the relay backs
    off and lives on); once the broker is back, every key arrives complete and in order."""
    relay = make_relay(fresh_database, pool, publisher, unique, batch_size=20)

    async def drained() -> bool:
        return await unsent(pool) == 0

    async with relaying(relay) as task:
        await write_events(pool, topic, keys=3, per_key=10)
        await eventually(drained, timeout_s=30)
        await asyncio.to_thread(local_infra, "kafka-stop")
        try:
            await write_events(pool, topic, keys=3, per_key=20)
            await asyncio.sleep(3)  # the relay meets the outage
            assert not task.done()
            assert await unsent(pool) == 60  # nothing is deleted that the broker did not take
        finally:
            await asyncio.to_thread(local_infra, "kafka-start")
        await eventually(drained, timeout_s=120)
        assert not task.done(), "the relay must survive the outage"
    records = await read_topic(infra.kafka_bootstrap, topic, 90)  # type: ignore[attr-defined]
    applied = as_seen_by_a_deduplicating_consumer(records)
    assert applied == {k: list(range(1, 31)) for k in applied}
    assert len(applied) == 3


async def test_two_relays_never_own_a_bucket_together_and_fail_over(
    fresh_database: str, pool: asyncpg.Pool, publisher: EventPublisher, unique: str
) -> None:
    first = make_relay(fresh_database, pool, publisher, unique)
    second = make_relay(fresh_database, pool, publisher, unique)
    await first.claim_buckets()
    await second.claim_buckets()
    assert first.owned_buckets == frozenset(range(BUCKETS))
    assert second.owned_buckets == frozenset()
    await first.close()  # its session ends: PostgreSQL frees its locks
    await second.claim_buckets()
    assert second.owned_buckets == frozenset(range(BUCKETS))
    await second.close()


async def test_a_relay_that_owns_buckets_takes_freed_ones_at_its_next_look(
    fresh_database: str, pool: asyncpg.Pool, publisher: EventPublisher, unique: str
) -> None:
    """While it owns buckets, a relay looks for free ones every ``claim_every_s`` (not every
    round): half the buckets held by another session are taken at the first look after that
    session ends, and not before it."""
    relay = make_relay(fresh_database, pool, publisher, unique)
    every = relay.config.claim_every_s
    other = await asyncpg.connect(fresh_database)  # another replica's lock session
    held = set(range(0, BUCKETS, 2))
    try:
        for bucket in sorted(held):
            await other.execute("SELECT pg_advisory_lock($1, $2)", relay._namespace, bucket)
        await relay.claim_buckets(now=100.0)
        assert relay.owned_buckets == frozenset(range(BUCKETS)) - held
    finally:
        await other.close()  # that replica is gone: PostgreSQL frees its locks
    try:
        await relay.claim_buckets(now=100.0 + every / 2)  # too soon to look again
        assert relay.owned_buckets == frozenset(range(BUCKETS)) - held
        await relay.claim_buckets(now=100.0 + every)
        assert relay.owned_buckets == frozenset(range(BUCKETS))
    finally:
        await relay.close()


def test_unique_keys_spread_over_buckets() -> None:
    from calsync_common.outbox.store import bucket_of

    buckets = {bucket_of(str(uuid4())) for _ in range(2000)}
    assert buckets == set(range(BUCKETS))
