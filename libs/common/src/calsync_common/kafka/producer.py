"""The idempotent producer (``acks=all``): the outbox relay, the webhook and dead letters use it.

Services do not publish state changes through it directly: they write to their outbox in the
transaction of the change, and the relay publishes (``calsync_common.outbox``). Direct use is for
what has no database state behind it: the webhook's notifications (acknowledged to Graph only
after the broker's ack) and dead-letter copies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)
from aiokafka.structs import RecordMetadata
from opentelemetry import trace
from prometheus_client import Counter

from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.envelope import encode
from calsync_common.kafka.tracing import Headers, inject
from calsync_common.telemetry import spans_exported

tracer = trace.get_tracer(__name__)
log = logging.getLogger(__name__)
#: Errors after which an idempotent producer never sends to a partition again: its sequence
#: numbers no longer match the broker's. aiokafka goes on counting past a batch that failed and
#: has no way to start the partition's sequence afresh, so after a broker restart that failed
#: one batch (``LeaderNotAvailableError``) every later one was ``OutOfOrderSequenceNumber``, for
#: ever: the relay sent nothing until the process restarted. A new producer (a new producer id)
#: starts every sequence at 0.
PRODUCER_STATE_ERRORS = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    ProducerFenced,
    InvalidProducerEpoch,
)
RENEWALS = Counter(
    "calsync_kafka_producer_renewals_total",
    "Producers replaced after their state went out of step with the broker's",
    ["reason"],
)
#: How long a replaced producer may take to fail or flush what it still held.
OLD_PRODUCER_STOP_S = 10.0


class EventPublisher:
    """Publishes CloudEvents; ``publish`` returns only once the broker has the event."""

    def __init__(
        self, bootstrap: str, *, client_id: str, source: str, topic_prefix: str = ""
    ) -> None:
        self.source = source
        #: Put before catalogue topic names (``PlatformSettings.topic_prefix``).
        self.topic_prefix = topic_prefix
        self.bootstrap = bootstrap
        self._client_id = client_id
        self._producer = self._new_producer()
        #: Set when a send failed with one of PRODUCER_STATE_ERRORS: the next send renews.
        self._out_of_step: str | None = None
        self._renewing = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self._client_id,
            enable_idempotence=True,  # forces acks="all"; retries never duplicate or reorder
            acks="all",
            linger_ms=2,
            request_timeout_ms=15_000,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    async def _usable(self) -> AIOKafkaProducer:
        """The producer, replaced first when it can no longer send (see PRODUCER_STATE_ERRORS),
        or when its sender routine ended (aiokafka's: nothing queued would leave again)."""
        if self._out_of_step is None and not self._sender_ended():
            return self._producer
        async with self._renewing:
            reason = self._out_of_step or ("sender_ended" if self._sender_ended() else None)
            if reason is not None:
                await self._renew(reason)
        return self._producer

    def _sender_ended(self) -> bool:
        sender = self._producer._sender  # aiokafka exposes no health of its own
        task = sender.sender_task if sender is not None else None
        return task is not None and task.done()

    async def _renew(self, reason: str) -> None:
        fresh = self._new_producer()
        try:
            await fresh.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await fresh.stop()
            raise  # the broker is away: the caller's send fails as it would have; tried again
        old, self._producer, self._out_of_step = self._producer, fresh, None
        RENEWALS.labels(reason).inc()
        log.warning("kafka producer replaced", extra={"reason": reason})
        task = asyncio.create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _retire(old: AIOKafkaProducer) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(old.stop(), OLD_PRODUCER_STOP_S)

    def _note_result(self, done: asyncio.Future[RecordMetadata]) -> None:
        """Done callback of every send: an error that leaves the producer out of step marks it
        for replacement at the next send."""
        if done.cancelled():
            return
        error = done.exception()
        if isinstance(error, PRODUCER_STATE_ERRORS):
            self._out_of_step = type(error).__name__

    async def publish(
        self, payload: EventPayload, *, subject: str | None = None, topic: str | None = None
    ) -> RecordMetadata:
        """Publish to the payload's catalogue topic, or to ``topic`` (tests, replays)."""
        destination = topic or self.resolve(payload.topic)
        message = encode(payload, source=self.source, subject=subject)
        key = message.key.encode() if isinstance(message.key, str) else message.key
        headers = list(message.headers.items())
        if not spans_exported():  # the span would record nothing: ~8 % of a webhook's CPU
            return await self.send_raw(destination, key, message.value, headers)
        with tracer.start_as_current_span(
            f"{destination} publish", kind=trace.SpanKind.PRODUCER
        ) as span:
            span.set_attribute("messaging.destination.name", destination)
            span.set_attribute("cloudevents.event_type", payload.event_type)
            return await self.send_raw(destination, key, message.value, headers)

    def resolve(self, logical: str) -> str:
        """The cluster's name of a catalogue topic."""
        return f"{self.topic_prefix}{logical}"

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> asyncio.Future[RecordMetadata]:
        """Queue bytes exactly as given (the relay's stored messages); await the result for the ack.

        Sends to one partition keep their order: the producer is idempotent, so a retry never
        duplicates or reorders, and a batch the broker did not take fails the ones queued after it.
        """
        producer = await self._usable()
        fut: asyncio.Future[RecordMetadata] = await producer.send(
            topic, value=value, key=key, headers=headers
        )
        fut.add_done_callback(self._note_result)
        return fut

    async def send_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> RecordMetadata:
        """Send bytes as they are (dead-letter copies); trace context is added to the headers."""
        producer = await self._usable()
        fut = await producer.send(topic, value=value, key=key, headers=inject(headers))
        fut.add_done_callback(self._note_result)
        return await fut

    async def ready(self) -> None:
        """Readiness: the cluster metadata can be fetched."""
        await self._producer.client.force_metadata_update()
        if not self._producer.client.cluster.brokers():
            raise ConnectionError("no Kafka broker known")
