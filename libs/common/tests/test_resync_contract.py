"""A resync of any calendar fits Kafka's default message limit: bounded pages on one key."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.calendar_events import (
    MAX_EVENT_ID_LENGTH,
    MAX_PAGE_ID_BYTES,
    MAX_PAGE_IDS,
    CalendarResyncCompleted,
    CalendarResyncPage,
    CalendarResyncStarted,
    calendar_key,
    resync_events,
)
from calsync_common.contracts.envelope import decode, encode
from calsync_common.contracts.examples import CONN, NOW
from calsync_common.contracts.topics import CALENDAR_EVENTS
from calsync_common.kafka.admin import ensure_topics
from calsync_common.kafka.producer import EventPublisher

MIB = 1024 * 1024
CALENDAR = "AAMkAD-" + "c" * 140
RESYNC = uuid.UUID("5b1c9d1e-0a7e-4c55-9d55-0e7c3f1b2a90")


def graph_ids(n: int, length: int = 200) -> list[str]:
    """Distinct ids shaped like Graph's (base64 alphabet), ``length`` characters each."""
    return [f"AAMkAGI2{i:08d}".ljust(length - 1, "A") + "=" for i in range(n)]


def resync(ids: list[str]) -> list[EventPayload]:
    return resync_events(
        CONN, CALENDAR, NOW, NOW + timedelta(days=90), ids, observed_at=NOW, resync_id=RESYNC
    )


def message_size(payload: EventPayload) -> int:
    message = encode(payload, source="/t")
    key = message.key.encode() if isinstance(message.key, str) else (message.key or b"")
    headers = sum(len(k.encode()) + len(v) for k, v in message.headers.items())
    return len(message.value) + len(key) + headers


def pages_of(events: list[EventPayload]) -> list[CalendarResyncPage]:
    return [e for e in events if isinstance(e, CalendarResyncPage)]


def test_fifty_thousand_long_ids_make_pages_far_below_one_mib() -> None:
    events = resync(graph_ids(50_000))

    started, *_, completed = events
    pages = pages_of(events)
    sizes = [message_size(e) for e in events]
    assert isinstance(started, CalendarResyncStarted)
    assert isinstance(completed, CalendarResyncCompleted)
    assert len(pages) == len(events) - 2 == 50
    assert max(sizes) < MIB // 4, max(sizes)
    assert {e.partition_key() for e in events} == {calendar_key(CONN, CALENDAR)}


def test_ids_round_trip_in_order_and_completed_counts_the_pages() -> None:
    ids = graph_ids(2_345, length=150)

    events = resync(ids)

    pages = pages_of(events)
    completed = events[-1]
    assert isinstance(completed, CalendarResyncCompleted)
    assert [p.page for p in pages] == list(range(len(pages)))
    assert [i for p in pages for i in p.event_ids] == ids
    assert completed.pages == len(pages) == 3
    assert completed.total_event_ids == len(ids)
    assert {e.resync_id for e in events} == {RESYNC}  # type: ignore[attr-defined]


def test_an_empty_window_is_started_and_completed_without_pages() -> None:
    events = resync([])

    expected: list[type[EventPayload]] = [CalendarResyncStarted, CalendarResyncCompleted]
    assert [type(e) for e in events] == expected
    assert events[-1] == CalendarResyncCompleted(
        connection_id=CONN,
        calendar_id=CALENDAR,
        resync_id=RESYNC,
        pages=0,
        total_event_ids=0,
        observed_at=NOW,
    )


def test_the_byte_budget_closes_pages_of_ids_json_escapes() -> None:
    # Each "é" takes 6 bytes as JSON (\u00e9): 1,000 such ids would need about 3 MB.
    ids = [f"{i:04d}" + "é" * (MAX_EVENT_ID_LENGTH - 4) for i in range(MAX_PAGE_IDS)]

    events = resync(ids)

    pages = pages_of(events)
    assert len(pages) > 1
    assert [i for p in pages for i in p.event_ids] == ids
    assert max(message_size(e) for e in events) < MAX_PAGE_ID_BYTES + 4096


def test_a_page_refuses_too_many_too_long_or_empty_ids() -> None:
    scope = {"connection_id": CONN, "calendar_id": CALENDAR, "resync_id": RESYNC}
    with pytest.raises(ValidationError, match="at most 1000 items"):
        CalendarResyncPage(**scope, page=0, event_ids=tuple(graph_ids(MAX_PAGE_IDS + 1, 20)))
    with pytest.raises(ValidationError, match=f"at most {MAX_EVENT_ID_LENGTH} characters"):
        CalendarResyncPage(**scope, page=0, event_ids=("A" * (MAX_EVENT_ID_LENGTH + 1),))
    with pytest.raises(ValidationError, match="at least 1 item"):
        CalendarResyncPage(**scope, page=0, event_ids=())
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        CalendarResyncPage(**scope, page=-1, event_ids=("A",))
    with pytest.raises(ValidationError, match="bytes as JSON"):
        CalendarResyncPage(**scope, page=0, event_ids=tuple(["é" * 500] * 100))
    with pytest.raises(ValidationError, match="cannot fill"):
        CalendarResyncCompleted(**scope, pages=2, total_event_ids=1, observed_at=NOW)


@pytest.mark.integration
async def test_a_fifty_thousand_id_resync_goes_through_a_default_broker(
    infra: object, unique: str
) -> None:
    bootstrap: str = infra.kafka_bootstrap  # type: ignore[attr-defined]
    topic = replace(CALENDAR_EVENTS, name=f"test.resync.{unique}", partitions=1)
    await ensure_topics(bootstrap, [topic])  # the catalogue sets no max.message.bytes
    ids = graph_ids(50_000)
    events = resync(ids)

    publisher = EventPublisher(bootstrap, client_id=f"test-{unique}", source="/calsync/test")
    await publisher.start()
    try:
        for event in events:
            await publisher.publish(event, topic=topic.name)
    finally:
        await publisher.stop()

    consumer = AIOKafkaConsumer(
        topic.name,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[EventPayload] = []
    try:
        while len(received) < len(events):
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"only {len(received)} of {len(events)} events came back"
            for records in batch.values():
                received += [decode(r.headers, r.key, r.value).data for r in records]
    finally:
        await consumer.stop()

    assert received == events
    assert [i for p in pages_of(received) for i in p.event_ids] == ids
