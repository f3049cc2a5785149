"""What the consumer runner hands to handlers, its configuration, its per-partition state and
its metrics (kept apart from the loop in ``consumer.py``)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter

from calsync_common.contracts.envelope import Envelope, Tombstone
from calsync_common.contracts.topics import DEAD_LETTER

APPLIED = Counter("calsync_consumer_applied_total", "Messages applied", ["group", "topic"])
DUPLICATES = Counter(
    "calsync_consumer_duplicates_total", "Messages skipped by sequence", ["group", "topic"]
)
DEAD_LETTERED = Counter(
    "calsync_consumer_dead_lettered_total", "Messages sent to the DLQ", ["group", "topic"]
)
BATCH_FAILURES = Counter(
    "calsync_consumer_batch_failures_total", "Batches rolled back", ["group", "error"]
)
POLL_FAILURES = Counter("calsync_consumer_poll_failures_total", "Failed polls", ["group"])
COMMIT_FAILURES = Counter(
    "calsync_consumer_kafka_commit_failures_total", "Kafka commits that failed", ["group"]
)
OFFSET_RESETS = Counter(
    "calsync_consumer_offset_resets_total",
    "Stored offsets that did not match the topic (recreated, truncated, expired)",
    ["group", "topic", "reason"],
)


@dataclass(frozen=True)
class ConsumedEvent:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    envelope: Envelope


@dataclass(frozen=True)
class ConsumedTombstone:
    topic: str
    partition: int
    offset: int
    tombstone: Tombstone


Message = ConsumedEvent | ConsumedTombstone
W = TypeVar("W")
Handler = Callable[[W, Message], Awaitable[None]]
#: Applies a run of messages of one partition, in order, as if ``Handler`` applied each.
BatchHandler = Callable[[W, Sequence[Message]], Awaitable[None]]


@dataclass
class ConsumerConfig:
    group_id: str
    topics: Sequence[str]
    max_attempts: int = 3
    retry_backoff_s: float = 0.2
    max_backoff_s: float = 30.0
    batch_max_records: int = 500
    poll_timeout_ms: int = 500
    dead_letter_topic: str = DEAD_LETTER.name
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class PartitionState:
    """What the runner knows of one assigned partition (dropped when it is revoked)."""

    positioned: bool = False
    expected: int | None = None  # the offset the next fetched record should have, at least
    witness_at: int | None = None  # offset of the record that must match the stored witness
    witness_failed: bool = False  # that record differed: the stored offset is of another topic
    resume_at: float = 0.0
    failures: int = 0  # consecutive infrastructure failures, for the backoff
    attempts: dict[int, int] = field(default_factory=dict)  # handler attempts by offset
    errors: dict[int, BaseException] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    record: ConsumerRecord
    error: BaseException
    dead_letter: bool


def fingerprint(record: ConsumerRecord) -> str:
    digest = hashlib.blake2b(digest_size=12)
    digest.update(record.key or b"\x00")
    digest.update(b"\x01")
    digest.update(record.value or b"\x00")
    return f"{record.timestamp}:{digest.hexdigest()}"
