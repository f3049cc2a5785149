"""The idempotent producer (``acks=all``): the outbox relay, the webhook and dead letters use it.

Services do not publish state changes through it directly: they write to their outbox in the
transaction of the change, and the relay publishes (``calsync_common.outbox``). Direct use is for
what has no database state behind it: the webhook's notifications (acknowledged to Graph only
after the broker's ack) and dead-letter copies.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata
from opentelemetry import trace

from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.envelope import encode
from calsync_common.kafka.tracing import Headers, inject
from calsync_common.telemetry import spans_exported

tracer = trace.get_tracer(__name__)


class EventPublisher:
    """Publishes CloudEvents; ``publish`` returns only once the broker has the event."""

    def __init__(
        self, bootstrap: str, *, client_id: str, source: str, topic_prefix: str = ""
    ) -> None:
        self.source = source
        #: Put before catalogue topic names (``PlatformSettings.topic_prefix``).
        self.topic_prefix = topic_prefix
        self.bootstrap = bootstrap
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            enable_idempotence=True,  # forces acks="all"; retries never duplicate or reorder
            acks="all",
            linger_ms=2,
            request_timeout_ms=15_000,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

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
        fut: asyncio.Future[RecordMetadata] = await self._producer.send(
            topic, value=value, key=key, headers=headers
        )
        return fut

    async def send_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> RecordMetadata:
        """Send bytes as they are (dead-letter copies); trace context is added to the headers."""
        fut = await self._producer.send(topic, value=value, key=key, headers=inject(headers))
        return await fut

    async def ready(self) -> None:
        """Readiness: the cluster metadata can be fetched."""
        await self._producer.client.force_metadata_update()
        if not self._producer.client.cluster.brokers():
            raise ConnectionError("no Kafka broker known")
