"""The topic catalogue: names, keys, partitioning, retention, producers and consumers.

Rendered to ``docs/events.md`` by ``make schemas``; ``kafka.admin.ensure_topics`` creates topics
from it, so code and documentation cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Cleanup = Literal["delete", "compact"]
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    summary: str
    key: str
    partitions: int
    cleanup: Cleanup
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    retention_ms: int = 7 * DAY_MS
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        cfg = {"cleanup.policy": self.cleanup, "retention.ms": str(self.retention_ms)}
        cfg.update(self.extra_config)
        return cfg


CONNECTIONS = Topic(
    name="calsync.connections.v1",
    summary=(
        "Connection lifecycle and calendar settings, one full snapshot per change (compacted: "
        "the latest snapshot per connection is the state)."
    ),
    key="connection_id",
    partitions=3,
    cleanup="compact",
    retention_ms=-1,
    producers=("connector",),
    consumers=("sync-worker", "availability"),
)
GRAPH_NOTIFICATIONS = Topic(
    name="calsync.graph-notifications.v1",
    summary=(
        "Microsoft Graph change and lifecycle notifications as received by the webhook, "
        "acknowledged to Graph only once stored here."
    ),
    key="connection_id/calendar_id",
    partitions=6,
    cleanup="delete",
    producers=("sync-worker (webhook)",),
    consumers=("sync-worker (delta runner)",),
)
CALENDAR_EVENTS = Topic(
    name="calsync.calendar-events.v1",
    summary=(
        "Normalised calendar events of connected calendars (upserts, removals and window "
        "resyncs), ordered per calendar."
    ),
    key="connection_id/calendar_id",
    partitions=6,
    cleanup="delete",
    retention_ms=14 * DAY_MS,
    producers=("sync-worker",),
    consumers=("availability",),
)
BOOKINGS = Topic(
    name="calsync.bookings.v1",
    summary="Bookings taken by the availability service, ordered per booking.",
    key="booking_id",
    partitions=3,
    cleanup="delete",
    retention_ms=30 * DAY_MS,
    producers=("availability",),
    consumers=("sync-worker (write-back to the Linked Calendar)",),
)
BOOKING_WRITEBACKS = Topic(
    name="calsync.booking-writebacks.v1",
    summary=(
        "What became of each booking version in the Linked Calendar (written, removed, failed "
        "with a reason, or skipped because there is nowhere to write), ordered per booking."
    ),
    key="booking_id",
    partitions=3,
    cleanup="delete",
    retention_ms=30 * DAY_MS,
    producers=("sync-worker",),
    consumers=("availability",),
)
SYNC_STATUS = Topic(
    name="calsync.sync-status.v1",
    summary="Sync freshness of each synced calendar (compacted: the latest status per calendar).",
    key="connection_id/calendar_id",
    partitions=3,
    cleanup="compact",
    retention_ms=-1,
    producers=("sync-worker",),
    consumers=("connector", "availability"),
)
DEAD_LETTER = Topic(
    name="calsync.dead-letter.v1",
    summary=(
        "Messages a consumer could not apply after its retries, unchanged, with "
        "`x-dlq-*` headers naming the source topic, partition, offset, group and error."
    ),
    key="the original key",
    partitions=1,
    cleanup="delete",
    retention_ms=30 * DAY_MS,
    producers=("every consumer",),
    consumers=("operators",),
)

CATALOGUE: tuple[Topic, ...] = (
    CONNECTIONS,
    GRAPH_NOTIFICATIONS,
    CALENDAR_EVENTS,
    BOOKINGS,
    BOOKING_WRITEBACKS,
    SYNC_STATUS,
    DEAD_LETTER,
)


def topic_named(name: str) -> Topic | None:
    """The catalogue entry of ``name`` (None for topics outside it, e.g. tests' own)."""
    return next((t for t in CATALOGUE if t.name == name), None)
