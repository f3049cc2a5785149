"""The projection through the real broker and the consumer runner: a mixed stream consumed live,
then replayed from offset 0 into a fresh database, gives the same rows; re-sent and stale
records change nothing; a failing handler leaves no effect behind (real Kafka, PostgreSQL)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from asyncpg import Range

from calsync_availability.adapters import busy_queries
from calsync_availability.bootstrap import MIGRATIONS, PROJECTION_CONSUMERS, SERVICE, SOURCE
from calsync_availability.service_layer.projections import on_calendar_event
from calsync_availability.service_layer.unit_of_work import AvailabilityWork
from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.calendar_events import (
    BookingEventChangedInOutlook,
    CalendarEventRemoved,
    CalendarEventUpserted,
    resync_events,
)
from calsync_common.contracts.connections import ConnectionSnapshot
from calsync_common.contracts.envelope import encode, tombstone_headers
from calsync_common.contracts.examples import examples
from calsync_common.contracts.sync_status import CalendarSyncStatus
from calsync_common.contracts.topics import CALENDAR_EVENTS, CONNECTIONS, DEAD_LETTER, SYNC_STATUS
from calsync_common.kafka.admin import ensure_topics
from calsync_common.kafka.consumer import (
    BatchHandler,
    ConsumedEvent,
    ConsumerConfig,
    ConsumerRunner,
    Handler,
    Message,
    RetryLater,
)
from calsync_common.kafka.producer import EventPublisher
from calsync_common.postgres.migrations import upgrade
from calsync_common.postgres.uow import PostgresUnitOfWork
from calsync_common.runtime import cluster_topics
from calsync_common.testing import eventually, running

pytestmark = pytest.mark.integration

DAY = datetime(2026, 12, 7, tzinfo=UTC)
BASE = next(e for e in examples() if isinstance(e, ConnectionSnapshot))
A, B, LINKED, X = "AAMk-a", "AAMk-b", "AAMk-linked", "AAMk-x"
#: Every table the projection consumers write (booking_conflicts also depends on ``bookings``).
PROJECTION_TABLES = (
    "outlook_connections",
    "outlook_forgotten_connections",
    "outlook_events",
    "outlook_calendar_sequences",
    "outlook_resyncs",
    "outlook_resync_ids",
    "outlook_calendar_freshness",
)


def at(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


class Stream:
    """Publishes records as the connector and the sync-worker's relays would: per-key sequences,
    deterministic ids, tombstones; remembers each partition's end."""

    def __init__(self, publisher: EventPublisher, prefix: str) -> None:
        self.publisher = publisher
        self.prefix = prefix
        self.sequences: dict[tuple[str, str], int] = {}
        self.ends: dict[tuple[str, int], int] = {}

    async def send(self, *payloads: EventPayload, sequence: int | None = None) -> None:
        for payload in payloads:
            key = payload.partition_key()
            if sequence is None:
                n = self.sequences[payload.topic, key] = (
                    self.sequences.get((payload.topic, key), 0) + 1
                )
            else:
                n = sequence
            message = encode(payload, source="/calsync/test", event_id=f"{key}:{n}", sequence=n)
            await self._send(payload.topic, key, message.value, list(message.headers.items()))

    async def tombstone(self, topic: str, key: str) -> None:
        n = self.sequences[topic, key] = self.sequences.get((topic, key), 0) + 1
        headers = tombstone_headers(event_id=f"{key}:{n}", source="/calsync/test", sequence=n)
        await self._send(topic, key, None, list(headers.items()))

    async def _send(self, topic: str, key: str, value: bytes | None, headers: Any) -> None:
        meta = await self.publisher.send_raw(f"{self.prefix}{topic}", key.encode(), value, headers)
        self.ends[meta.topic, meta.partition] = max(
            self.ends.get((meta.topic, meta.partition), 0), meta.offset + 1
        )


class Projection:
    """The projection consumers on one database, under their own group ids."""

    def __init__(self, pool: asyncpg.Pool, stream: Stream, group: str) -> None:
        self.pool = pool
        self.stream = stream
        self.group = group
        self.uow = PostgresUnitOfWork(pool, SOURCE, AvailabilityWork)

    def runner(
        self,
        topic: str,
        short: str,
        handler: Handler[AvailabilityWork],
        batch_handler: BatchHandler[AvailabilityWork] | None = None,
    ) -> ConsumerRunner[AvailabilityWork]:
        config = ConsumerConfig(
            group_id=f"{self.group}-{short}",
            topics=[f"{self.stream.prefix}{topic}"],
            dead_letter_topic=f"{self.stream.prefix}{DEAD_LETTER.name}",
            retry_backoff_s=0.05,
        )
        return ConsumerRunner(
            self.stream.publisher.bootstrap,
            config,
            self.pool,
            handler,
            self.stream.publisher,
            bind=self.uow.bind,
            batch_handler=batch_handler,
        )

    @contextlib.asynccontextmanager
    async def running(
        self, handlers: dict[str, Handler[AvailabilityWork]] | None = None
    ) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for _, topic, short, handler, batch_handler in PROJECTION_CONSUMERS:
                override = (handlers or {}).get(topic)
                runner = (
                    self.runner(topic, short, override)  # one by one, as the test wants
                    if override is not None
                    else self.runner(topic, short, handler, batch_handler)  # as in production
                )
                await stack.enter_async_context(running(runner))
            yield

    async def caught_up(self) -> None:
        """Wait until every record published so far is applied (offsets stored in PostgreSQL)."""

        async def done() -> bool:
            rows = await self.pool.fetch(
                "SELECT topic, partition, next_offset FROM kafka_consumer_offsets"
                " WHERE group_id LIKE $1",
                f"{self.group}-%",
            )
            stored = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
            return all(stored.get(tp, -1) >= end for tp, end in self.stream.ends.items())

        await eventually(done, timeout_s=90)

    async def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        out = {}
        for table in PROJECTION_TABLES:
            rows = await self.pool.fetch(f"SELECT * FROM {table}")
            out[table] = sorted(tuple(map(repr, r.values())) for r in rows)
        return out


@pytest.fixture
async def stream(infra: Any, topic_prefix: str, unique: str) -> AsyncIterator[Stream]:
    prefix = f"{topic_prefix}{unique}."
    await ensure_topics(infra.kafka_bootstrap, cluster_topics(prefix))
    publisher = EventPublisher(
        infra.kafka_bootstrap, client_id="test-replay", source="/calsync/test"
    )
    await publisher.start()
    try:
        yield Stream(publisher, prefix)
    finally:
        await publisher.stop()


@contextlib.asynccontextmanager
async def database(databases: Any) -> AsyncIterator[asyncpg.Pool]:
    async with databases.throwaway() as dsn:
        await upgrade(dsn, SERVICE, MIGRATIONS)
        async with asyncpg.create_pool(dsn, min_size=1, max_size=4) as pool:
            yield pool


class Member:
    def __init__(self, n: int) -> None:
        self.connection_id = uuid.UUID(int=n)
        self.sub_account_id = "sub-replay"
        self.user_id = f"user-{n}"

    def snapshot(self, version: int, **changes: Any) -> ConnectionSnapshot:
        fields = {
            "connection_id": self.connection_id,
            "version": version,
            "sub_account_id": self.sub_account_id,
            "user_id": self.user_id,
            "linked_calendar_id": LINKED,
            "conflict_calendar_ids": (A, B),
            "blocking_show_as": ("busy", "tentative"),
            "changed_at": at(version),
            **changes,
        }
        return BASE.model_copy(update=fields)

    def upsert(
        self, event_id: str, start: float, end: float, calendar: str = A, **f: Any
    ) -> CalendarEventUpserted:
        return CalendarEventUpserted(
            connection_id=self.connection_id,
            calendar_id=calendar,
            event_id=event_id,
            start=at(start),
            end=at(end),
            show_as=f.pop("show_as", "busy"),
            observed_at=at(0),
            **f,
        )

    def removal(self, event_id: str, calendar: str = A) -> CalendarEventRemoved:
        return CalendarEventRemoved(
            connection_id=self.connection_id,
            calendar_id=calendar,
            event_id=event_id,
            observed_at=at(0),
        )

    def status(self, calendar: str, changed: float, **f: Any) -> CalendarSyncStatus:
        return CalendarSyncStatus(
            connection_id=self.connection_id,
            calendar_id=calendar,
            status=f.pop("status", "healthy"),
            subscription=f.pop("subscription", "active"),
            last_synced_at=at(changed),
            changed_at=at(changed),
            **f,
        )

    def resync(self, ids: Sequence[str], calendar: str = A) -> list[EventPayload]:
        return resync_events(self.connection_id, calendar, at(0), at(24), ids, at(1), uuid.uuid4())


async def busy_ids(pool: asyncpg.Pool, member: Member) -> list[str]:
    async with pool.acquire() as conn:
        found = await busy_queries.outlook_busy(
            conn, member.sub_account_id, [member.user_id], at(-48), at(72)
        )
    return [b.event_id for b in found]


async def test_a_replay_from_the_beginning_gives_the_same_projection(
    stream: Stream, databases: Any, unique: str
) -> None:
    m1, m2, m3 = Member(1), Member(2), Member(3)
    async with database(databases) as live_pool:
        live = Projection(live_pool, stream, f"live-{unique}")
        async with live.running():
            # Events before any snapshot (another topic), of calendars kept and not kept.
            await stream.send(m1.upsert("early", 1, 2), m1.upsert("x", 1, 2, calendar=X))
            await stream.send(m1.status(A, 1), m1.status(X, 1))
            await live.caught_up()
            await stream.send(
                m1.snapshot(1), m2.snapshot(1), m3.snapshot(1, conflict_calendar_ids=(A,))
            )
            await stream.send(
                m1.upsert("busy", 9, 10),
                m1.upsert("tentative", 10, 11, show_as="tentative"),
                m1.upsert("free", 11, 12, show_as="free"),
                m1.upsert("b", 12, 13, calendar=B),
                m1.upsert("echo", 14, 15, calendar=LINKED, booking_id=uuid.uuid4()),
                m1.upsert("gone", 15, 16),
                m1.upsert("cancelled", 16, 17),
                m2.upsert("m2", 9, 10),
                m3.upsert("m3", 9, 10),
                m3.upsert("m3-removed", 11, 12),
            )
            await stream.send(
                m1.upsert("cancelled", 16, 17, is_cancelled=True), m3.removal("m3-removed")
            )
            await stream.send(
                BookingEventChangedInOutlook(
                    connection_id=m1.connection_id,
                    calendar_id=LINKED,
                    event_id="echo",
                    booking_id=uuid.uuid4(),
                    booking_version=1,
                    change="deleted",
                    observed_at=at(0),
                )
            )
            # A complete resync of m1's calendar A drops "gone"; an incomplete one of m3 nothing.
            await stream.send(*m1.resync(["early", "busy", "tentative", "free"]))
            m3_resync = m3.resync(["m3"])
            await stream.send(m3_resync[0], m3_resync[2])  # its page lost
            # Re-sends: the same sequence again, and a stale one.
            key = (CALENDAR_EVENTS.name, f"{m3.connection_id}/{A}")
            await stream.send(m3.upsert("m3", 20, 21), sequence=stream.sequences[key])
            await stream.send(m3.upsert("m3-stale", 20, 21), sequence=1)
            await stream.send(m2.status(A, 3), m2.status(A, 2, status="failed"))
            await live.caught_up()
            # Settings: m1 drops calendar B entirely; m2 disconnects, then is erased; late events.
            await stream.send(m1.snapshot(2, conflict_calendar_ids=(A,)))
            await stream.send(m2.snapshot(2, status="disconnected"))
            await live.caught_up()
            await stream.tombstone(CONNECTIONS.name, str(m2.connection_id))
            await stream.send(m1.upsert("b-late", 18, 19, calendar=B), m2.upsert("m2-late", 9, 10))
            await stream.send(m2.status(A, 5), m3.status(A, 5))
            await stream.tombstone(SYNC_STATUS.name, f"{m1.connection_id}/{X}")
            await live.caught_up()

        assert await busy_ids(live_pool, m1) == ["early", "busy", "tentative"]
        assert await busy_ids(live_pool, m2) == []
        assert await busy_ids(live_pool, m3) == ["m3"]
        async with live_pool.acquire() as conn:
            (m3_busy,) = await busy_queries.outlook_busy(
                conn, m3.sub_account_id, [m3.user_id], at(0), at(24)
            )
        assert (m3_busy.start, m3_busy.end) == (at(9), at(10))  # the re-sends changed nothing
        async with live_pool.acquire() as conn:
            fresh = await busy_queries.calendar_freshness(
                conn, "sub-replay", [m1.user_id, m3.user_id]
            )
            rows = await conn.fetch("SELECT connection_id, event_id FROM outlook_events")
        assert {(f.user_id, f.calendar_id, f.status) for f in fresh} == {
            (m1.user_id, A, "healthy"),
            (m3.user_id, A, "healthy"),
        }
        assert {(r["connection_id"], r["event_id"]) for r in rows} == {
            (m1.connection_id, "early"),
            (m1.connection_id, "busy"),
            (m1.connection_id, "tentative"),
            (m1.connection_id, "free"),
            (m1.connection_id, "echo"),
            (m3.connection_id, "m3"),
        }
        expected = await live.tables()

        async with database(databases) as replay_pool:
            replay = Projection(replay_pool, stream, f"replay-{unique}")
            async with replay.running():
                await replay.caught_up()
            got = await replay.tables()
        for table in PROJECTION_TABLES:
            assert got[table] == expected[table], table
    assert expected["outlook_forgotten_connections"] == [(repr(m2.connection_id),)]


async def test_a_failing_handler_leaves_no_effect_and_a_retried_batch_applies_once(
    stream: Stream, databases: Any, unique: str
) -> None:
    member = Member(7)
    attempts: dict[str, int] = {}

    async def flaky(work: AvailabilityWork, message: Message) -> None:
        await on_calendar_event(work, message)  # the effects first, then the failure
        assert isinstance(message, ConsumedEvent)
        event_id = getattr(message.envelope.data, "event_id", "")
        attempts[event_id] = attempts.get(event_id, 0) + 1
        if event_id == "poison":
            raise ValueError("a bug in this record's handling")
        if event_id == "retried" and attempts[event_id] == 1:
            raise RetryLater("a dependency is down")

    async with database(databases) as pool:
        booking = uuid.uuid4()
        await pool.execute(
            "INSERT INTO bookings (booking_id, group_id, sub_account_id, booking_calendar_id,"
            " user_id, during, status, version, title)"
            " VALUES ($1, $1, $2, 'bc-1', $3, $4, 'confirmed', 1, 'Demo')",
            booking,
            member.sub_account_id,
            member.user_id,
            Range(at(9), at(12)),
        )
        projection = Projection(pool, stream, f"flaky-{unique}")
        await stream.send(member.snapshot(1))
        await stream.send(
            member.upsert("poison", 9, 10),
            member.upsert("retried", 10, 11),
            member.upsert("after", 11, 12),
        )
        async with projection.running({CALENDAR_EVENTS.name: flaky}):
            await projection.caught_up()
        conflicts = await pool.fetch("SELECT event_id FROM booking_conflicts ORDER BY event_id")
        published = await pool.fetchval("SELECT count(*) FROM outbox WHERE key = $1", str(booking))
        events = await pool.fetch("SELECT event_id FROM outlook_events ORDER BY event_id")
    assert attempts["poison"] == 3  # retried, then dead-lettered: none of its effects remain
    assert attempts["retried"] == 2
    assert [r["event_id"] for r in events] == ["after", "retried"]
    assert [r["event_id"] for r in conflicts] == ["after", "retried"]
    assert published == 2  # one BookingConflictDetected per conflict, none from failed attempts
