"""The outbox relay: publishes committed outbox rows in per-key order, then deletes them.

* **One relay per key at a time.** Keys fall into :data:`BUCKETS` buckets; a relay owns a bucket
  while it holds the session advisory lock ``(namespace, bucket)`` on its own connection. Several
  replicas each run a relay; a replica that dies (or loses its connection) frees its buckets and
  another takes them on its next round.
* **Order per key.** Rows are read oldest first and sent in that order to the idempotent producer;
  a key's rows are deleted only up to its first failure, so what follows is re-sent after it.
* **A queue, not a log.** The broker keeps what was sent; the table only what is still to send,
  so it stays small and autovacuum visits it often. (Keeping sent rows for a day made every
  read step over the index entries of all rows sent since the last vacuum.)
* **At least once, recognisably.** A crash between the broker's ack and the delete re-sends rows
  with the same bytes: same ``ce_id``, same ``ce_sequence``. Consumers drop them (the consumer
  runner does it by sequence).
* **Latency.** ``NOTIFY`` on insert wakes the relay at commit; a poll every ``idle_poll_s``
  covers a lost notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from calsync_common.kafka.producer import EventPublisher
from calsync_common.outbox.store import BUCKETS, NOTIFY_CHANNEL
from calsync_common.postgres import Connection
from calsync_common.postgres.pool import transaction
from calsync_common.transient import TRANSIENT

log = logging.getLogger(__name__)

PUBLISHED = Counter("calsync_outbox_published_total", "Outbox rows relayed", ["service"])
FAILURES = Counter(
    "calsync_outbox_failures_total", "Outbox relay rounds that failed", ["service", "error"]
)
PENDING = Gauge("calsync_outbox_pending", "Outbox rows not yet relayed", ["service"])
OLDEST = Gauge(
    "calsync_outbox_oldest_pending_seconds", "Age of the oldest unrelayed row", ["service"]
)
OWNED = Gauge("calsync_outbox_buckets_owned", "Outbox buckets this replica relays", ["service"])


#: The oldest rows of the owned buckets: ``(bucket, id)`` read per bucket, each in id order (so
#: one key's rows come in order) and stopping at the limit; the oldest ``$2`` of them all taken.
_READ = (
    "SELECT o.id, o.topic, o.key, o.headers, o.value FROM unnest($1::smallint[]) AS b(bucket)"
    " CROSS JOIN LATERAL (SELECT id, topic, key, headers, value FROM outbox"
    " WHERE outbox.bucket = b.bucket ORDER BY id LIMIT $2) AS o ORDER BY o.id LIMIT $2"
)


@dataclass(frozen=True)
class RelayConfig:
    batch_size: int = 500
    idle_poll_s: float = 1.0
    backoff_max_s: float = 10.0
    #: While it owns buckets, a relay looks for free ones (a replica gone) this often; a round
    #: of its own is otherwise one read and one delete.
    claim_every_s: float = 1.0


@dataclass(frozen=True)
class _Row:
    id: int
    topic: str
    key: str
    headers: list[tuple[str, bytes]]
    value: bytes | None


class OutboxRelay:
    """Run by the app's cleanup_ctx (``runtime.outbox_relay_ctx``) until :meth:`request_stop`."""

    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        publisher: EventPublisher,
        *,
        service: str,
        config: RelayConfig | None = None,
        after_publish: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._publisher = publisher
        self.service = service
        self.config = config or RelayConfig()
        # Advisory lock keys are two int4s: a namespace per service, and the bucket.
        self._namespace = zlib.crc32(f"calsync-outbox:{service}".encode()) - 2**31
        self._lock_conn: asyncpg.Connection | None = None
        self._owned: set[int] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None
        self._last_measure = 0.0
        self._last_claim = 0.0
        # Test seam: runs after the broker acked a batch and before its rows are deleted.
        self._after_publish = after_publish

    @property
    def owned_buckets(self) -> frozenset[int]:
        return frozenset(self._owned)

    def request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def ready(self) -> None:
        if self._failure is not None:
            raise RuntimeError(f"outbox relay stopped: {self._failure!r}")

    async def close(self) -> None:
        """End the lock session: the buckets are free for another replica at once."""
        await self._drop_lock_connection()

    async def run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            await self._drop_lock_connection()

    async def _loop(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                await self.claim_buckets()
                sent = await self.relay_once()
                await self._housekeeping()
            except TRANSIENT as exc:
                FAILURES.labels(self.service, type(exc).__name__).inc()
                log.warning("outbox relay round failed", extra={"error": type(exc).__name__})
                if not isinstance(exc, KafkaError):
                    await self._drop_lock_connection()
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.config.backoff_max_s)
                continue
            backoff = 0.1
            if sent < self.config.batch_size:
                await self._sleep(self.config.idle_poll_s)

    async def _sleep(self, seconds: float) -> None:
        """Wait for a NOTIFY, a stop, or the timeout."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def claim_buckets(self, *, now: float | None = None) -> None:
        """Take every free bucket: at the start of each round while the relay owns none, then
        every ``claim_every_s`` (a dead session is found by the round's own read on it, and
        its buckets are given up with it)."""
        loop_time = asyncio.get_running_loop().time() if now is None else now
        if self._lock_conn is None or self._lock_conn.is_closed():
            await self._drop_lock_connection()
            conn = await asyncpg.connect(self._dsn)
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
            self._lock_conn = conn
        elif self._owned and loop_time - self._last_claim < self.config.claim_every_s:
            return
        self._last_claim = loop_time
        taken = await self._lock_conn.fetch(
            "SELECT b FROM generate_series(0, $2 - 1) AS b"
            " WHERE b <> ALL($3::int[]) AND pg_try_advisory_lock($1, b)",
            self._namespace,
            BUCKETS,
            sorted(self._owned),
        )
        self._owned.update(r["b"] for r in taken)
        OWNED.labels(self.service).set(len(self._owned))

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _drop_lock_connection(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        self._owned.clear()
        OWNED.labels(self.service).set(0)
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(*TRANSIENT):
                await asyncio.wait_for(conn.close(), 5)  # frees the advisory locks
            if not conn.is_closed():
                conn.terminate()

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[Connection]:
        """The relay's own connection (the one holding its buckets) for its reads and deletes, so
        it never queues behind the service's work for a pooled one: with 200 delta rounds
        waiting on the pool, the outbox fell 4 s behind. Before the first round, a pooled one.
        Each statement commits on its own (autocommit), as the relay needs no more."""
        conn = self._lock_conn
        if conn is None or conn.is_closed():
            async with transaction(self._pool) as pooled:
                yield pooled
            return
        yield conn

    async def relay_once(self) -> int:
        """Relay up to one batch of the owned buckets; the number of rows sent (and deleted)."""
        if not self._owned:
            return 0
        async with self._session() as conn:
            records = await conn.fetch(_READ, sorted(self._owned), self.config.batch_size)
        rows = [
            _Row(
                r["id"],
                r["topic"],
                r["key"],
                [(k, v.encode("latin-1")) for k, v in json.loads(r["headers"])],
                r["value"],
            )
            for r in records
        ]
        sent, failure = await self._publish(rows)
        if sent and self._after_publish is not None:
            await self._after_publish()
        if sent:
            async with self._session() as conn:
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", sent)
            PUBLISHED.labels(self.service).inc(len(sent))
        if failure is not None:
            raise failure
        return len(sent)

    async def _publish(self, rows: Sequence[_Row]) -> tuple[list[int], BaseException | None]:
        futures: list[asyncio.Future[object]] = []
        first_failure: BaseException | None = None
        try:
            for row in rows:
                topic = self._publisher.resolve(row.topic)  # rows keep the logical name
                futures.append(
                    await self._publisher.send(topic, row.key.encode(), row.value, row.headers)
                )
        except KafkaError as exc:  # the producer refused to queue: send what was queued
            first_failure = exc
        results = await asyncio.gather(*futures, return_exceptions=True)
        sent: list[int] = []
        blocked: set[str] = set()  # keys with a failed row: nothing after it is deleted
        for row, result in zip(rows, results, strict=False):
            if row.key in blocked:
                continue
            if isinstance(result, BaseException):
                blocked.add(row.key)
                first_failure = first_failure or result
                log.error(
                    "outbox row not relayed",
                    extra={"topic": row.topic, "outbox_id": row.id, "error": repr(result)},
                )
                continue
            sent.append(row.id)
        return sent, first_failure

    async def _housekeeping(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_measure >= 1.0:
            self._last_measure = now
            await self.measure()

    async def measure(self) -> None:
        """Refresh the lag gauges (the loop does, once a second)."""
        async with self._session() as conn:
            row = await conn.fetchrow(
                "SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS age"
                " FROM outbox"
            )
        assert row is not None
        PENDING.labels(self.service).set(row["n"])
        OLDEST.labels(self.service).set(float(row["age"] or 0.0))
