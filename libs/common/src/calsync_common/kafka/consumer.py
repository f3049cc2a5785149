"""Consumer runner: batches via ``getmany``, effects and offsets in one PostgreSQL transaction.

Policy (STYLE §7, §8):

* explicit group id, ``enable_auto_commit=False``; the source of truth for "what was applied" is
  ``kafka_consumer_offsets`` in the service's database, written in the same transaction as the
  handler's changes. On assignment the runner seeks to those offsets, so a crash between the
  database commit and the Kafka commit applies nothing twice. Kafka offsets are committed after
  the database commit only so lag tooling sees progress.
* a message that is not a valid calsync CloudEvent goes to the dead-letter topic at once;
* a handler error is retried ``max_attempts`` times with exponential backoff, each attempt in
  its own savepoint, then the message goes to the dead-letter topic (with ``x-dlq-*`` headers)
  and its offset is stored, so the partition keeps moving;
* infrastructure errors (database or broker unreachable, serialization failures) and
  :class:`RetryLater` abort the whole batch; nothing is stored and the partition is re-read
  from the stored offset after a backoff, so nothing is lost while a dependency is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from opentelemetry import trace
from prometheus_client import Counter

from calsync_common.contracts.envelope import ContractError, Envelope, decode
from calsync_common.contracts.topics import DEAD_LETTER
from calsync_common.kafka import offsets
from calsync_common.kafka.producer import EventPublisher
from calsync_common.kafka.tracing import extract
from calsync_common.postgres import Connection

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

APPLIED = Counter("calsync_consumer_applied_total", "Messages applied", ["group", "topic"])
DEAD_LETTERED = Counter(
    "calsync_consumer_dead_lettered_total", "Messages sent to the DLQ", ["group", "topic"]
)
BATCH_FAILURES = Counter("calsync_consumer_batch_failures_total", "Batches aborted", ["group"])

TRANSIENT = (
    OSError,
    KafkaError,  # e.g. the dead-letter produce timed out: re-read the batch, lose nothing
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.CannotConnectNowError,
)


class RetryLater(Exception):
    """Raised by a handler when a dependency is down: the batch is re-read later, not dropped."""


@dataclass(frozen=True)
class ConsumedEvent:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    envelope: Envelope


Handler = Callable[[Connection, ConsumedEvent], Awaitable[None]]


@dataclass
class ConsumerConfig:
    group_id: str
    topics: Sequence[str]
    max_attempts: int = 3
    retry_backoff_s: float = 0.2
    batch_max_records: int = 500
    poll_timeout_ms: int = 500
    dead_letter_topic: str = DEAD_LETTER.name
    extra: dict[str, object] = field(default_factory=dict)


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ConsumerRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Nothing to flush: each batch is committed to PostgreSQL before the next poll.
        log.info("partitions revoked", extra={"partitions": sorted(map(str, revoked))})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.runner.seek_to_stored(assigned)


class ConsumerRunner:
    """Runs one consumer group member until :meth:`stop`; started from the app's cleanup_ctx."""

    def __init__(
        self,
        bootstrap: str,
        config: ConsumerConfig,
        pool: asyncpg.Pool,
        handler: Handler,
        dead_letters: EventPublisher,
        *,
        after_batch_applied: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.handler = handler
        self.dead_letters = dead_letters
        # Test seam: runs between the database commit and the Kafka commit.
        self._after_batch_applied = after_batch_applied
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=config.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=config.batch_max_records,
            **config.extra,
        )
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None
        # Partitions whose position is past an aborted batch until a seek back succeeds; their
        # records are not applied meanwhile, so a failed seek can never skip a message.
        self._needs_seek: set[TopicPartition] = set()

    async def seek_to_stored(self, assigned: set[TopicPartition]) -> None:
        async with self.pool.acquire() as conn:
            for topic in {tp.topic for tp in assigned}:
                stored = await offsets.stored_offsets(conn, self.config.group_id, topic)
                for tp in (tp for tp in assigned if tp.topic == topic):
                    if tp.partition in stored:
                        self.consumer.seek(tp, stored[tp.partition])
                    else:
                        await self.consumer.seek_to_beginning(tp)

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe(list(self.config.topics), listener=_SeekToStored(self))

    def request_stop(self) -> None:
        """Stop taking work: the loop ends after the batch in flight is committed."""
        self._stopping.set()

    async def close(self) -> None:
        await self.consumer.stop()

    async def ready(self) -> None:
        """Readiness: the loop is alive (a crashed loop must not look like an idle one)."""
        if self._failure is not None:
            raise RuntimeError(f"consumer loop stopped: {self._failure!r}")

    async def run(self) -> None:
        """Poll, apply, store, commit; until stopped. Never lets one bad batch end the loop."""
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._failure = exc
            raise

    async def _loop(self) -> None:
        backoff = self.config.retry_backoff_s
        while not self._stopping.is_set():
            batches = await self.consumer.getmany(
                timeout_ms=self.config.poll_timeout_ms, max_records=self.config.batch_max_records
            )
            for tp, records in batches.items():
                if tp in self._needs_seek:
                    await self._reseek(tp)
                    continue  # records fetched from the old position are dropped, not applied
                try:
                    next_offset = await self._apply_partition_batch(tp, records)
                except (RetryLater, *TRANSIENT) as exc:
                    BATCH_FAILURES.labels(self.config.group_id).inc()
                    log.warning(
                        "batch aborted; re-reading from the stored offset",
                        extra={"partition": str(tp), "error": type(exc).__name__},
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    await self._reseek(tp)
                    continue
                backoff = self.config.retry_backoff_s
                if self._after_batch_applied is not None:
                    await self._after_batch_applied()
                if next_offset is not None:
                    await self.consumer.commit({tp: next_offset})

    async def _reseek(self, tp: TopicPartition) -> None:
        self._needs_seek.add(tp)
        try:
            await self.seek_to_stored({tp})
        except TRANSIENT:
            log.warning("cannot read stored offsets yet", extra={"partition": str(tp)})
        else:
            self._needs_seek.discard(tp)

    async def _apply_partition_batch(
        self, tp: TopicPartition, records: list[ConsumerRecord]
    ) -> int | None:
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await offsets.lock_offset(conn, self.config.group_id, tp.topic, tp.partition)
            fresh = [r for r in records if stored is None or r.offset >= stored]
            if not fresh:
                return None  # another member or an earlier run already applied these
            for record in fresh:
                await self._apply_one(conn, record)
            next_offset: int = fresh[-1].offset + 1
            await offsets.save_offset(
                conn, self.config.group_id, tp.topic, tp.partition, next_offset
            )
            return next_offset

    async def _apply_one(self, conn: Connection, record: ConsumerRecord) -> None:
        headers = list(record.headers or ())
        try:
            envelope = decode(headers, record.key, record.value)
        except ContractError as exc:
            await self._dead_letter(record, exc, attempts=0)
            return
        event = ConsumedEvent(record.topic, record.partition, record.offset, record.key, envelope)
        with tracer.start_as_current_span(
            f"{record.topic} process", context=extract(headers), kind=trace.SpanKind.CONSUMER
        ):
            for attempt in range(1, self.config.max_attempts + 1):
                try:
                    async with conn.transaction():  # a savepoint: a failed attempt leaves no trace
                        await self.handler(conn, event)
                except (RetryLater, *TRANSIENT):
                    raise
                except Exception as exc:
                    if attempt == self.config.max_attempts:
                        await self._dead_letter(record, exc, attempts=attempt)
                        return
                    await asyncio.sleep(self.config.retry_backoff_s * 2 ** (attempt - 1))
                else:
                    APPLIED.labels(self.config.group_id, record.topic).inc()
                    return

    async def _dead_letter(self, record: ConsumerRecord, exc: Exception, *, attempts: int) -> None:
        DEAD_LETTERED.labels(self.config.group_id, record.topic).inc()
        log.error(
            "message dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": type(exc).__name__,
                "attempts": attempts,
            },
        )
        headers = [h for h in (record.headers or ()) if h[0] not in ("traceparent", "tracestate")]
        headers += [
            ("x-dlq-topic", record.topic.encode()),
            ("x-dlq-partition", str(record.partition).encode()),
            ("x-dlq-offset", str(record.offset).encode()),
            ("x-dlq-group", self.config.group_id.encode()),
            ("x-dlq-attempts", str(attempts).encode()),
            ("x-dlq-error", f"{type(exc).__name__}: {exc}"[:500].encode()),
        ]
        await self.dead_letters.send_raw(
            self.config.dead_letter_topic, record.key, record.value, headers
        )
