"""Consumer runner: batches via ``getmany``, effects and offsets in one PostgreSQL transaction.

Policy (STYLE §7, §8); docs/events.md states it for consumers of every topic:

* **Offsets.** Explicit group id, no auto-commit. The truth of "what was applied" is
  ``kafka_consumer_offsets`` in the service's database, written in the transaction of the
  handler's changes, with a *witness* (fingerprint of the last applied record). On assignment
  the runner positions each partition from there (:meth:`ConsumerRunner.position`); Kafka
  commits follow only for lag tooling, sent by a task of their own (coalesced, off the loop's
  path), and a failed one is logged and ignored.
* **Duplicates.** An event whose per-key ``ce_sequence`` is not above the last applied one of its
  source and key is skipped in the same transaction (relayed twice, replayed after a reset).
* **Topic incarnations.** A stored offset past the log end, a witness that differs from the record
  at its offset, or a client that moved back by itself (out-of-range reset) means the topic was
  recreated, truncated or restored. Policy: log an error, count
  ``calsync_consumer_offset_resets_total``, write an audit row, and replay the partition from its
  log start (sequence deduplication drops what was already applied). A stored offset before the
  log start (retention removed unapplied records) is reported the same way and resumes at the
  log start: those records are gone, nothing silently pretends otherwise.
* **Handler errors** are retried ``max_attempts`` times, each attempt in a savepoint; between
  attempts the partition is paused (the batch's earlier records are committed first), so a retry
  never sleeps inside a transaction or holds the offset row. Then the record goes to the
  dead-letter topic, produced outside any transaction, and its offset is stored after that.
* **Partitions side by side.** The partitions of one poll are applied concurrently, each in its
  own transaction (its records in order); the next poll follows when all are stored.
* **Batches.** A runner given a ``batch_handler`` hands it a partition's fresh records at once
  (after one sequence check for all of them): one statement per batch instead of one per
  record. If it raises, the batch's transaction is rolled back and the batch is applied again
  record by record through ``handler`` in a new one, so a failing record is retried and
  dead-lettered alone.
* **Invalid messages** (not a calsync CloudEvent) go to the dead-letter topic at once.
* **Infrastructure errors** (PostgreSQL restarting, broker unreachable, :class:`RetryLater`)
  roll the partition's batch back, seek back to its first record and pause that partition with
  exponential backoff; other partitions keep flowing and the loop keeps polling, so a member is
  never pushed past ``max.poll.interval.ms``.
* **Anything else** (a bug in this code) ends the loop: :meth:`ready` fails and the runtime
  stops the process with a non-zero status so a supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord
from opentelemetry import trace

from calsync_common.contracts.envelope import ContractError, Envelope, Tombstone, decode_record
from calsync_common.kafka import offsets
from calsync_common.kafka.consumer_types import (
    APPLIED,
    BATCH_FAILURES,
    COMMIT_FAILURES,
    DEAD_LETTERED,
    DUPLICATES,
    OFFSET_RESETS,
    POLL_FAILURES,
    BatchHandler,
    ConsumedEvent,
    ConsumedTombstone,
    ConsumerConfig,
    Failed,
    Handler,
    Message,
    PartitionState,
    W,
    fingerprint,
)
from calsync_common.kafka.dead_letter import dead_letter_headers
from calsync_common.kafka.producer import EventPublisher
from calsync_common.kafka.tracing import extract
from calsync_common.postgres import Connection
from calsync_common.postgres.pool import transaction
from calsync_common.transient import TRANSIENT, RetryLater

__all__ = [
    "BatchHandler",
    "ConsumedEvent",
    "ConsumedTombstone",
    "ConsumerConfig",
    "ConsumerRunner",
    "Handler",
    "Message",
    "RetryLater",
]

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class _BatchFailed(Exception):
    """The batch handler failed: roll the batch's transaction back, then go record by record."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ConsumerRunner[Any]) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Nothing to flush: each batch is committed to PostgreSQL before the next poll.
        log.info("partitions revoked", extra={"partitions": sorted(map(str, revoked))})
        for tp in revoked:
            self.runner.partitions.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.runner.on_assigned(assigned)


class ConsumerRunner(Generic[W]):
    """Runs one consumer group member until :meth:`request_stop`; started by the app's
    cleanup_ctx. ``bind`` turns the batch transaction's connection into what the handler takes
    (a service's unit-of-work type), so handlers never see asyncpg."""

    def __init__(
        self,
        bootstrap: str,
        config: ConsumerConfig,
        pool: asyncpg.Pool,
        handler: Handler[W],
        dead_letters: EventPublisher,
        *,
        bind: Callable[[Connection], W],
        after_batch_applied: Callable[[], Awaitable[None]] | None = None,
        batch_handler: BatchHandler[W] | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.handler = handler
        self.batch_handler = batch_handler
        self.bind = bind
        self.dead_letters = dead_letters
        # Runs between the database commit and the Kafka commit (what the batch changed is
        # visible to others now): wakes in-process workers; tests use it to die right there.
        self._after_batch_applied = after_batch_applied
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=config.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=config.batch_max_records,
            **config.extra,
        )
        self.partitions: dict[TopicPartition, PartitionState] = {}
        # Kafka commits (for lag tooling only) leave the loop: the latest offset per partition
        # waits here and one task sends them, coalesced, while the loop goes on polling.
        self._to_commit: dict[TopicPartition, int] = {}
        self._commit_wanted = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None
        self._poll_failures = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe(list(self.config.topics), listener=_Listener(self))

    def request_stop(self) -> None:
        """Stop taking work: the loop ends after the batch in flight is committed."""
        self._stopping.set()

    async def close(self) -> None:
        await self.consumer.stop()

    async def ready(self) -> None:
        """Readiness: the loop is alive (a crashed loop must not look like an idle one)."""
        if self._failure is not None:
            raise RuntimeError(f"consumer loop stopped: {self._failure!r}")

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    async def run(self) -> None:
        """Poll, apply, store, commit; until stopped. Only a bug in this code ends it early."""
        self._committer = asyncio.create_task(
            self._mirror_commits(), name=f"kafka commits {self.config.group_id}"
        )
        try:
            await self._loop()
            # Stopping: Kafka's lag figures end where we did (bounded: a broker away must not
            # hold the shutdown; PostgreSQL has the offsets anyway).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._commit_pending()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._failure = exc
            log.critical("consumer loop failed", exc_info=exc)
            raise
        finally:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer

    # -- positioning -----------------------------------------------------------------------

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            self.partitions[tp] = PartitionState()
        self.consumer.pause(*assigned)  # nothing is fetched before it is positioned
        try:
            await self.position(assigned)
        except TRANSIENT as exc:
            log.warning("cannot position partitions yet", extra={"error": type(exc).__name__})
            for tp in assigned:
                self._backoff(tp, self.partitions[tp])

    async def position(self, tps: set[TopicPartition]) -> None:
        """Seek each partition to its stored offset, checking it against the log first."""
        ordered = sorted(tps, key=lambda t: (t.topic, t.partition))
        begin = await self.consumer.beginning_offsets(ordered)
        end = await self.consumer.end_offsets(ordered)
        async with transaction(self.pool) as conn:
            for tp in ordered:
                state = self.partitions.get(tp)
                if state is None:
                    continue  # revoked meanwhile
                stored = await offsets.lock_offset(
                    conn, self.config.group_id, tp.topic, tp.partition
                )
                target, witness_at = await self._target(conn, tp, stored, begin[tp], end[tp])
                self._if_assigned(
                    self.consumer.seek, tp, witness_at if witness_at is not None else target
                )
                state.expected = witness_at if witness_at is not None else target
                state.witness_at = witness_at
                state.positioned = True
        for tp in ordered:
            state = self.partitions.get(tp)
            if state is not None and state.positioned and state.resume_at == 0.0:
                self._if_assigned(self.consumer.resume, tp)

    async def _target(
        self,
        conn: Connection,
        tp: TopicPartition,
        stored: offsets.StoredOffset | None,
        begin: int,
        end: int,
    ) -> tuple[int, int | None]:
        """(offset to apply from, offset of the witness record to read first or None)."""
        if stored is None:
            return begin, None
        state = self.partitions[tp]
        if state.witness_failed:
            state.witness_failed = False
            await self._reset(conn, tp, "witness_mismatch", stored.next_offset, begin)
            return begin, None
        if stored.next_offset > end:
            await self._reset(conn, tp, "ahead_of_log_end", stored.next_offset, begin)
            return begin, None
        if stored.next_offset < begin:
            await self._reset(conn, tp, "behind_log_start", stored.next_offset, begin)
            return begin, None
        if stored.witness is not None and stored.next_offset - 1 >= begin:
            return stored.next_offset, stored.next_offset - 1
        return stored.next_offset, None

    async def _reset(
        self, conn: Connection, tp: TopicPartition, reason: str, stored: int | None, new: int
    ) -> None:
        OFFSET_RESETS.labels(self.config.group_id, tp.topic, reason).inc()
        log.error(
            "stored offset does not match the topic; replaying by policy",
            extra={
                "partition": str(tp),
                "reason": reason,
                "stored_offset": stored,
                "new_offset": new,
            },
        )
        await offsets.record_reset(
            conn,
            self.config.group_id,
            tp.topic,
            tp.partition,
            reason=reason,
            stored=stored,
            new_offset=new,
        )

    # -- the loop --------------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            if self._committer is not None and self._committer.done():
                self._committer.result()  # its bug ends the loop, as the loop's own would
            await self._tend_partitions()
            try:
                batches = await self.consumer.getmany(
                    timeout_ms=self._poll_timeout_ms(), max_records=self.config.batch_max_records
                )
            except KafkaError as exc:
                POLL_FAILURES.labels(self.config.group_id).inc()
                self._poll_failures += 1
                delay = min(self.config.retry_backoff_s * 2**self._poll_failures, 5.0)
                log.warning("poll failed", extra={"error": repr(exc), "retry_in_s": delay})
                await asyncio.sleep(delay)  # no transaction is open here
                continue
            self._poll_failures = 0
            work = [
                (tp, state, records)
                for tp, records in batches.items()
                if records and (state := self.partitions.get(tp)) is not None and state.positioned
            ]
            await self._process_all(work)

    async def _process_all(
        self, work: list[tuple[TopicPartition, PartitionState, list[ConsumerRecord]]]
    ) -> None:
        """The partitions of a poll side by side, each in its own transaction: one partition's
        round trips no longer wait for another's (records of one partition stay in order). A
        bug in one cancels the others (their transactions roll back) and ends the loop."""
        if len(work) == 1:
            await self._process(*work[0])
            return
        try:
            async with asyncio.TaskGroup() as group:
                for item in work:
                    group.create_task(self._process(*item))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None

    def _poll_timeout_ms(self) -> int:
        now = asyncio.get_running_loop().time()
        waits = [s.resume_at - now for s in self.partitions.values() if s.resume_at > 0]
        soonest = min(waits, default=self.config.poll_timeout_ms / 1000)
        return max(10, min(self.config.poll_timeout_ms, int(soonest * 1000)))

    async def _tend_partitions(self) -> None:
        """Resume partitions whose backoff is over; position those that are not yet."""
        now = asyncio.get_running_loop().time()
        due = {tp for tp, s in self.partitions.items() if s.resume_at and s.resume_at <= now}
        unpositioned = {tp for tp in due if not self.partitions[tp].positioned}
        for tp in due:
            self.partitions[tp].resume_at = 0.0
        if unpositioned:
            try:
                await self.position(unpositioned)
            except TRANSIENT as exc:
                log.warning("cannot position partitions yet", extra={"error": type(exc).__name__})
                for tp in unpositioned:
                    if tp in self.partitions:
                        self._backoff(tp, self.partitions[tp])
        for tp in due - unpositioned:
            self._if_assigned(self.consumer.resume, tp)

    def _backoff(
        self, tp: TopicPartition, state: PartitionState, delay: float | None = None
    ) -> None:
        if delay is None:
            state.failures += 1
            delay = min(self.config.retry_backoff_s * 2 ** (state.failures - 1), 30.0)
            delay = min(delay, self.config.max_backoff_s)
        state.resume_at = asyncio.get_running_loop().time() + delay
        self._if_assigned(self.consumer.pause, tp)

    def _rewind(self, tp: TopicPartition, state: PartitionState, offset: int) -> None:
        self._if_assigned(self.consumer.seek, tp, offset)  # local: drops what was fetched
        state.expected = offset

    def _if_assigned(self, action: Callable[..., None], tp: TopicPartition, *args: int) -> None:
        """Pause, resume or seek, unless a rebalance took the partition away meanwhile."""
        try:
            action(tp, *args)
        except IllegalStateError:
            log.info("partition no longer assigned", extra={"partition": str(tp)})

    async def _process(
        self, tp: TopicPartition, state: PartitionState, records: list[ConsumerRecord]
    ) -> None:
        first = records[0].offset
        if state.expected is not None and first < state.expected:
            # The client moved back by itself: its position was out of range (the topic was
            # recreated or truncated) and auto_offset_reset rewound it. Check it against the log.
            OFFSET_RESETS.labels(self.config.group_id, tp.topic, "client_reset").inc()
            log.error("consumer position moved back by itself", extra={"partition": str(tp)})
            state.positioned = False
            self._backoff(tp, state, delay=0.0)
            return
        try:
            next_offset, failed = await self._apply(tp, state, records)
        except TRANSIENT as exc:
            BATCH_FAILURES.labels(self.config.group_id, type(exc).__name__).inc()
            log.warning(
                "batch rolled back; re-reading from its first record after a backoff",
                extra={"partition": str(tp), "error": type(exc).__name__},
            )
            self._rewind(tp, state, first)
            self._backoff(tp, state)
            return
        state.failures = 0
        state.witness_at = None
        if next_offset is None:  # the witness showed another incarnation: replay
            state.positioned = False
            self._backoff(tp, state, delay=0.0)
            return
        if failed is None and next_offset > records[-1].offset + 1:
            self._rewind(tp, state, next_offset)  # another member got further meanwhile
        state.expected = next_offset
        if failed is not None:
            await self._after_failure(tp, state, failed)
        if self._after_batch_applied is not None:
            await self._after_batch_applied()
        self._to_commit[tp] = state.expected
        self._commit_wanted.set()

    async def _mirror_commits(self) -> None:
        """Commit the applied offsets to Kafka as they come, never in the loop's way: a commit
        is one broker round trip, and PostgreSQL, not Kafka, holds what was applied. While one
        commit is in flight, later offsets gather and go in the next."""
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self._commit_pending()

    async def _commit_pending(self) -> None:
        pending, self._to_commit = self._to_commit, {}
        owned = self.consumer.assignment()
        pending = {tp: offset for tp, offset in pending.items() if tp in owned}
        if not pending:
            return
        try:
            await self.consumer.commit(pending)
        except KafkaError as exc:  # e.g. CommitFailedError after a rebalance: harmless
            COMMIT_FAILURES.labels(self.config.group_id).inc()
            log.info(
                "kafka commit failed; PostgreSQL holds the offsets",
                extra={"partitions": sorted(map(str, pending)), "error": type(exc).__name__},
            )

    async def _apply(
        self, tp: TopicPartition, state: PartitionState, records: list[ConsumerRecord]
    ) -> tuple[int | None, Failed | None]:
        """Apply in one transaction up to the first failing record; (next offset, failure).
        A next offset of None means the stored offset belongs to another incarnation. A batch
        its handler fails is rolled back whole and applied again record by record, in a new
        transaction (no savepoint around every batch: two round trips each)."""
        try:
            return await self._apply_in_transaction(
                tp, state, records, batch=self.batch_handler is not None
            )
        except _BatchFailed:
            return await self._apply_in_transaction(tp, state, records, batch=False)

    async def _apply_in_transaction(
        self,
        tp: TopicPartition,
        state: PartitionState,
        records: list[ConsumerRecord],
        *,
        batch: bool,
    ) -> tuple[int | None, Failed | None]:
        group = self.config.group_id
        async with transaction(self.pool) as conn:
            stored = await offsets.lock_offset(conn, group, tp.topic, tp.partition)
            witness_at = state.witness_at
            if (
                witness_at is not None
                and stored is not None
                and records[0].offset == witness_at == stored.next_offset - 1
                and fingerprint(records[0]) != stored.witness
            ):
                state.witness_failed = True  # position() resets it, knowing the log start
                return None, None
            start = stored.next_offset if stored is not None else -1
            fresh = [r for r in records if r.offset >= start]
            if not fresh:  # another member or an earlier run already applied these
                return max(start, records[-1].offset + 1), None
            if batch and await self._apply_batch(conn, state, fresh):
                last_record = fresh[-1]
                await offsets.save_offset(
                    conn,
                    group,
                    tp.topic,
                    tp.partition,
                    last_record.offset + 1,
                    fingerprint(last_record),
                )
                return last_record.offset + 1, None
            failed: Failed | None = None
            last: ConsumerRecord | None = None
            for record in fresh:
                failed = await self._apply_one(conn, state, record)
                if failed is not None:
                    break
                last = record
            if last is not None:
                await offsets.save_offset(
                    conn, group, tp.topic, tp.partition, last.offset + 1, fingerprint(last)
                )
                return last.offset + 1, failed
            return max(start, fresh[0].offset), failed

    async def _apply_batch(
        self, conn: Connection, state: PartitionState, records: list[ConsumerRecord]
    ) -> bool:
        """Apply ``records`` through the batch handler; False (nothing done) when one of them
        needs the record-by-record path: undecodable, or retried before. :class:`_BatchFailed`
        when the handler failed: the caller rolls the transaction back."""
        assert self.batch_handler is not None
        if any(r.offset in state.attempts for r in records):
            return False
        decoded: list[tuple[ConsumerRecord, Envelope | Tombstone]] = []
        for record in records:
            try:
                decoded.append(
                    (record, decode_record(list(record.headers or ()), record.key, record.value))
                )
            except ContractError:
                return False
        group, topic = self.config.group_id, records[0].topic
        links = [trace.Link(c) for r, _ in decoded[:32] if (c := _span_context(r)) is not None]
        with tracer.start_as_current_span(
            f"{topic} process", kind=trace.SpanKind.CONSUMER, links=links
        ) as span:
            span.set_attribute("messaging.batch.message_count", len(records))
            try:
                newer = await offsets.advance_sequences(
                    conn, group, topic, [_sequence_of(r, d) for r, d in decoded]
                )
                messages = [
                    _message(r, d) for (r, d), new in zip(decoded, newer, strict=True) if new
                ]
                if messages:
                    await self.batch_handler(self.bind(conn), messages)
            except TRANSIENT:
                raise
            except Exception as exc:
                log.warning(
                    "batch handler failed; applying the batch record by record",
                    extra={"topic": topic, "error": type(exc).__name__},
                )
                raise _BatchFailed from exc
        duplicates = len(records) - len(messages)
        if duplicates:
            DUPLICATES.labels(group, topic).inc(duplicates)
        APPLIED.labels(group, topic).inc(len(messages))
        return True

    async def _apply_one(
        self, conn: Connection, state: PartitionState, record: ConsumerRecord
    ) -> Failed | None:
        headers = list(record.headers or ())
        try:
            decoded = decode_record(headers, record.key, record.value)
        except ContractError as exc:
            return Failed(record, exc, dead_letter=True)
        attempts = state.attempts.get(record.offset, 0)
        if attempts >= self.config.max_attempts:  # the dead-letter produce failed last time
            error = state.errors.get(record.offset, RuntimeError("retries exhausted"))
            return Failed(record, error, dead_letter=True)
        message = _message(record, decoded)
        with tracer.start_as_current_span(
            f"{record.topic} process", context=extract(headers), kind=trace.SpanKind.CONSUMER
        ):
            try:
                async with conn.transaction():  # a savepoint: a failed attempt leaves no trace
                    if not await self._is_new(conn, record, decoded):
                        DUPLICATES.labels(self.config.group_id, record.topic).inc()
                        return None
                    await self.handler(self.bind(conn), message)
            except TRANSIENT:
                raise
            except Exception as exc:
                state.attempts[record.offset] = attempts + 1
                state.errors[record.offset] = exc
                return Failed(record, exc, dead_letter=attempts + 1 >= self.config.max_attempts)
        state.attempts.pop(record.offset, None)
        state.errors.pop(record.offset, None)
        APPLIED.labels(self.config.group_id, record.topic).inc()
        return None

    async def _is_new(
        self, conn: Connection, record: ConsumerRecord, decoded: Envelope | Tombstone
    ) -> bool:
        entry = _sequence_of(record, decoded)
        if entry is None:
            return True
        return await offsets.advance_sequence(conn, self.config.group_id, record.topic, *entry)

    async def _after_failure(
        self, tp: TopicPartition, state: PartitionState, failed: Failed
    ) -> None:
        """Outside the transaction: wait and retry, or dead-letter then step over the record."""
        offset = failed.record.offset
        self._rewind(tp, state, offset)
        if not failed.dead_letter:
            attempt = state.attempts.get(offset, 1)
            self._backoff(tp, state, delay=self.config.retry_backoff_s * 2 ** (attempt - 1))
            return
        try:
            await self._dead_letter(failed.record, failed.error, state.attempts.get(offset, 0))
            async with transaction(self.pool) as conn:
                group = self.config.group_id
                stored = await offsets.lock_offset(conn, group, tp.topic, tp.partition)
                if stored is None or stored.next_offset <= offset:
                    await offsets.save_offset(
                        conn, group, tp.topic, tp.partition, offset + 1, fingerprint(failed.record)
                    )
        except TRANSIENT as exc:
            log.warning(
                "dead-letter step failed; retrying later",
                extra={"partition": str(tp), "error": type(exc).__name__},
            )
            state.attempts[offset] = max(state.attempts.get(offset, 0), self.config.max_attempts)
            self._backoff(tp, state)
            return
        state.attempts.pop(offset, None)
        state.errors.pop(offset, None)
        self._rewind(tp, state, offset + 1)

    async def _dead_letter(self, record: ConsumerRecord, exc: BaseException, attempts: int) -> None:
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
        await self.dead_letters.send_raw(
            self.config.dead_letter_topic,
            record.key,
            record.value,
            dead_letter_headers(record, self.config.group_id, exc, attempts),
        )


def _message(record: ConsumerRecord, decoded: Envelope | Tombstone) -> Message:
    if isinstance(decoded, Envelope):
        return ConsumedEvent(record.topic, record.partition, record.offset, record.key, decoded)
    return ConsumedTombstone(record.topic, record.partition, record.offset, decoded)


def _sequence_of(
    record: ConsumerRecord, decoded: Envelope | Tombstone
) -> tuple[str, str, int] | None:
    """(source, key, sequence) to deduplicate the record by, or None when it has none."""
    if decoded.sequence is None or decoded.source is None or record.key is None:
        return None
    return decoded.source, record.key.decode("utf-8", "replace"), decoded.sequence


def _span_context(record: ConsumerRecord) -> trace.SpanContext | None:
    context = trace.get_current_span(extract(list(record.headers or ()))).get_span_context()
    return context if context.is_valid else None
