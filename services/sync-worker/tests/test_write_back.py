"""Bookings written back to the Linked Calendar, against the Graph emulator, Kafka and PostgreSQL.

Each test runs the sync-worker as in ``test_subscriptions`` (the same rig): bookings reach it
through the real ``calsync.bookings.v1`` consumer or, where the topic is not what is tested,
through its handler in a transaction of its own; the write-back runner makes the Graph calls;
what it publishes is read from its outbox.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from calsync_common.contracts.bookings import (
    BookingCancelled,
    BookingConfirmed,
    BookingConflictDetected,
    BookingRescheduled,
)
from calsync_common.contracts.envelope import Envelope
from calsync_common.kafka.consumer import ConsumedEvent
from calsync_common.postgres.uow import PostgresUnitOfWork
from calsync_common.runtime import POOL, PUBLISHER
from calsync_common.testing import eventually
from calsync_sync_worker.adapters.write_back_repository import WriteBackRepository
from calsync_sync_worker.bootstrap import SOURCE
from calsync_sync_worker.domain.write_back import BOOKING_PROPERTY_ID
from calsync_sync_worker.entrypoints.keys import DELTA, WRITE_BACK
from calsync_sync_worker.service_layer.unit_of_work import SyncWork
from calsync_sync_worker.service_layer.write_back import on_booking

from .conftest import Emulator, SignedIn
from .test_convergence import timed
from .test_subscriptions import Rig, running_rig

pytestmark = pytest.mark.integration


def _slot(days: int, minutes: int = 30) -> tuple[datetime, datetime]:
    """A slot some days ahead, on a whole minute (each test uses days of its own)."""
    start = (datetime.now(UTC) + timedelta(days=days)).replace(second=0, microsecond=0)
    return start, start + timedelta(minutes=minutes)


def _common(rig: Rig, booking_id: uuid.UUID, version: int) -> dict[str, Any]:
    return {
        "booking_id": booking_id,
        "version": version,
        "sub_account_id": rig.sub_account_id,
        "user_id": rig.user_id,
        "booking_calendar_id": "bc-1",
        "occurred_at": datetime.now(UTC),
    }


def confirmed(rig: Rig, booking_id: uuid.UUID, start: datetime, end: datetime) -> BookingConfirmed:
    return BookingConfirmed(**_common(rig, booking_id, 1), start=start, end=end, title="Intro call")


async def deliver(rig: Rig, *events: Any) -> None:
    """Hand bookings events to the consumer's handler, as the runner would, and wake the writer."""
    uow = PostgresUnitOfWork(rig.app[POOL], SOURCE, SyncWork)
    for event in events:
        envelope = Envelope("id", "/calsync/availability", event.event_type, None, None, event)
        async with uow() as work:
            await on_booking(work, ConsumedEvent("t", 0, 0, b"k", envelope))
    rig.app[WRITE_BACK].wake()


async def outcomes(rig: Rig, booking_id: uuid.UUID) -> list[dict[str, Any]]:
    return await rig.published("calsync.booking-writebacks.v1", str(booking_id))


async def await_outcome(
    rig: Rig, booking_id: uuid.UUID, count: int, timeout_s: float = 30
) -> list[dict[str, Any]]:
    async def arrived() -> bool:
        return len(await outcomes(rig, booking_id)) >= count

    await eventually(arrived, timeout_s=timeout_s)
    return await outcomes(rig, booking_id)


async def events_of_booking(rig: Rig, calendar_id: str, booking_id: uuid.UUID) -> list[Any]:
    """The Linked Calendar's events that carry the booking's transactionId, as Graph lists them."""
    body = await rig.graph(
        f"/me/calendars/{calendar_id}/events?$top=1000"
        f"&$expand=singleValueExtendedProperties($filter=id eq '{BOOKING_PROPERTY_ID}')"
    )
    return [e for e in body["value"] if e.get("transactionId") == f"calsync-{booking_id}"]


async def default_calendar(rig: Rig) -> str:
    calendars = await rig.graph("/me/calendars")
    return str(next(c["id"] for c in calendars["value"] if c["isDefaultCalendar"]))


async def calendar_events(rig: Rig, calendar_id: str) -> list[dict[str, Any]]:
    return await rig.published("calsync.calendar-events.v1", f"{rig.connection_id}/{calendar_id}")


async def create_busy_event(rig: Rig, calendar_id: str, days: int, subject: str) -> dict[str, Any]:
    """A busy hour some days ahead, made in the emulator as the user would."""
    start = (datetime.now(UTC) + timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    made: dict[str, Any] = await rig.control(
        "POST",
        f"/_emulator/users/{rig.user.user_id}/calendars/{calendar_id}/events",
        timed(subject, start, start + timedelta(hours=1), "busy", "UTC"),
    )
    return made


async def until_published(
    rig: Rig, calendar_id: str, event: dict[str, Any], timeout_s: float
) -> None:
    """Wait until the event is among what the sync-worker published for the calendar."""

    async def there() -> bool:
        published = await calendar_events(rig, calendar_id)
        return any(e.get("event_id") == event["id"] for e in published)

    await eventually(there, timeout_s=timeout_s)


async def round_now(rig: Rig, calendar_id: str) -> None:
    uow = PostgresUnitOfWork(rig.app[POOL], SOURCE, SyncWork)
    async with uow() as work:
        await work.sync.round_due_now(rig.connection_id, calendar_id)
    rig.app[DELTA].wake()


async def test_a_booking_from_kafka_is_written_once_tagged_and_its_echo_is_flagged(
    rig: Rig,
) -> None:
    linked = await default_calendar(rig)
    await rig.snapshot(3, (linked,), sync_preference="two_way")
    booking_id = uuid.uuid4()
    start, end = _slot(days=3)
    # Through the real topic and the sync-worker's consumer group.
    await rig.app[PUBLISHER].publish(confirmed(rig, booking_id, start, end))

    (outcome,) = await await_outcome(rig, booking_id, 1)
    assert outcome["outcome"] == "written"
    assert outcome["booking_version"] == 1
    assert outcome["calendar_id"] == linked
    (event,) = await events_of_booking(rig, linked, booking_id)
    assert event["id"] == outcome["event_id"]
    assert event["subject"] == "Intro call"
    assert event["showAs"] == "busy"
    assert event["singleValueExtendedProperties"] == [
        {"id": BOOKING_PROPERTY_ID, "value": str(booking_id)}
    ]
    assert datetime.fromisoformat(event["start"]["dateTime"][:19]).replace(tzinfo=UTC) == start

    # The write comes back through delta as calsync's own event (an echo), and nothing else.
    await round_now(rig, linked)

    async def echoed() -> bool:
        return any(
            e.get("booking_id") == str(booking_id) for e in await calendar_events(rig, linked)
        )

    await eventually(echoed, timeout_s=30)
    published = await calendar_events(rig, linked)
    assert not [e for e in published if e["type"].endswith("booking_changed.v1")]

    # The same version again (a redelivery) writes nothing and publishes nothing.
    await rig.app[PUBLISHER].publish(confirmed(rig, booking_id, start, end))
    await rig.app[PUBLISHER].publish(
        BookingConflictDetected(
            **_common(rig, booking_id, 1),
            start=start,
            end=end,
            connection_id=rig.connection_id,
            calendar_id=linked,
            event_id="AAMk-other",
            show_as="busy",
            conflict_start=start,
            conflict_end=end,
        )
    )
    reschedule = BookingRescheduled(
        **_common(rig, booking_id, 2),
        start=start + timedelta(hours=1),
        end=end + timedelta(hours=1),
    )
    await rig.app[PUBLISHER].publish(reschedule)  # a marker: it is consumed after the others
    written = await await_outcome(rig, booking_id, 2)
    assert [o["booking_version"] for o in written] == [1, 2]
    assert len(await events_of_booking(rig, linked, booking_id)) == 1


async def test_a_create_retried_after_a_lost_commit_finds_the_first_event(rig: Rig) -> None:
    linked = await default_calendar(rig)
    await rig.snapshot(3, (linked,))
    booking_id = uuid.uuid4()
    start, end = _slot(days=5)
    await deliver(rig, confirmed(rig, booking_id, start, end))
    (first,) = await await_outcome(rig, booking_id, 1)

    # As if the process died after Graph created the event but before the commit recorded it:
    # the write is due again and calsync does not know the event.
    conn = await asyncpg.connect(rig.dsn)
    try:
        await conn.execute(
            "UPDATE booking_events SET event_id = NULL, written_version = NULL,"
            " outcome = NULL, due_at = now() WHERE booking_id = $1",
            booking_id,
        )
    finally:
        await conn.close()
    rig.app[WRITE_BACK].wake()
    second = (await await_outcome(rig, booking_id, 2))[1]
    assert second["outcome"] == "written"
    assert second["event_id"] == first["event_id"]  # the transactionId found the first one
    assert len(await events_of_booking(rig, linked, booking_id)) == 1


async def test_reschedule_moves_the_event_and_cancel_removes_it(rig: Rig) -> None:
    linked = await default_calendar(rig)
    await rig.snapshot(3, (linked,))
    booking_id = uuid.uuid4()
    start, end = _slot(days=7)
    await deliver(rig, confirmed(rig, booking_id, start, end))
    await await_outcome(rig, booking_id, 1)

    later = start + timedelta(hours=2)
    await deliver(
        rig,
        BookingRescheduled(**_common(rig, booking_id, 2), start=later, end=later + (end - start)),
    )
    moved = (await await_outcome(rig, booking_id, 2))[1]
    assert (moved["outcome"], moved["booking_version"]) == ("written", 2)
    (event,) = await events_of_booking(rig, linked, booking_id)
    assert datetime.fromisoformat(event["start"]["dateTime"][:19]).replace(tzinfo=UTC) == later

    await deliver(rig, BookingCancelled(**_common(rig, booking_id, 3)))
    removed = (await await_outcome(rig, booking_id, 3))[2]
    assert (removed["outcome"], removed["booking_version"]) == ("removed", 3)
    assert await events_of_booking(rig, linked, booking_id) == []

    # An older version arriving late (a replay) changes nothing.
    await deliver(rig, confirmed(rig, booking_id, start, end))
    await round_now(rig, linked)
    assert len(await outcomes(rig, booking_id)) == 3
    assert await events_of_booking(rig, linked, booking_id) == []


async def test_without_a_linked_calendar_it_is_skipped_then_written_once_there_is_one(
    rig: Rig,
) -> None:
    linked = await default_calendar(rig)
    await rig.snapshot(3, (linked,), linked_calendar_id=None)
    booking_id = uuid.uuid4()
    start, end = _slot(days=9)
    await deliver(rig, confirmed(rig, booking_id, start, end))
    (skipped,) = await await_outcome(rig, booking_id, 1)
    assert (skipped["outcome"], skipped["reason"], skipped["will_retry"]) == (
        "skipped",
        "no_linked_calendar",
        False,
    )

    await rig.snapshot(4, (linked,))  # the user picks a Linked Calendar
    rig.app[WRITE_BACK].wake()
    written = (await await_outcome(rig, booking_id, 2))[1]
    assert (written["outcome"], written["booking_version"]) == ("written", 1)
    assert len(await events_of_booking(rig, linked, booking_id)) == 1


async def test_a_connection_needing_sign_in_parks_the_write_until_it_is_active(
    rig: Rig,
) -> None:
    linked = await default_calendar(rig)
    await rig.snapshot(3, (linked,), status="reauth_required")
    booking_id = uuid.uuid4()
    start, end = _slot(days=11)
    await deliver(rig, confirmed(rig, booking_id, start, end))
    (parked,) = await await_outcome(rig, booking_id, 1)
    assert (parked["outcome"], parked["reason"]) == ("skipped", "connection_not_active")

    await rig.snapshot(4, (linked,), status="active")
    rig.app[WRITE_BACK].wake()
    assert (await await_outcome(rig, booking_id, 2))[1]["outcome"] == "written"


async def test_two_way_moves_and_deletes_in_outlook_are_published_once(rig: Rig) -> None:
    linked = await default_calendar(rig)
    await rig.snapshot(3, (linked,), sync_preference="two_way")
    booking_id = uuid.uuid4()
    start, end = _slot(days=13)
    await deliver(rig, confirmed(rig, booking_id, start, end))
    (written,) = await await_outcome(rig, booking_id, 1)
    event_id = written["event_id"]

    # The user drags the event an hour later in Outlook.
    moved_start = start + timedelta(hours=1)
    await rig.control(
        "PATCH",
        f"/_emulator/users/{rig.user.user_id}/events/{event_id}",
        {
            "start": {"dateTime": moved_start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {
                "dateTime": (moved_start + (end - start)).strftime("%Y-%m-%dT%H:%M:%S"),
                "timeZone": "UTC",
            },
        },
    )
    await round_now(rig, linked)

    async def changes() -> list[dict[str, Any]]:
        return [
            e
            for e in await calendar_events(rig, linked)
            if e["type"] == "dev.calsync.calendar_event.booking_changed.v1"
        ]

    async def one_change() -> bool:
        return len(await changes()) == 1

    await eventually(one_change, timeout_s=30)
    (move,) = await changes()
    assert move["change"] == "moved"
    assert move["booking_id"] == str(booking_id)
    assert move["booking_version"] == 1
    assert datetime.fromisoformat(move["start"]) == moved_start
    # Another round sees the same times: no second report.
    await round_now(rig, linked)
    await round_now(rig, linked)

    await rig.control("DELETE", f"/_emulator/users/{rig.user.user_id}/events/{event_id}")
    await round_now(rig, linked)

    async def two_changes() -> bool:
        return len(await changes()) == 2

    await eventually(two_changes, timeout_s=30)
    assert [c["change"] for c in await changes()] == ["moved", "deleted"]


async def test_one_way_changes_in_outlook_publish_nothing(rig: Rig) -> None:
    linked = await default_calendar(rig)
    await rig.snapshot(3, (linked,), sync_preference="one_way")
    booking_id = uuid.uuid4()
    start, end = _slot(days=15)
    await deliver(rig, confirmed(rig, booking_id, start, end))
    (written,) = await await_outcome(rig, booking_id, 1)

    await rig.control("DELETE", f"/_emulator/users/{rig.user.user_id}/events/{written['event_id']}")
    await round_now(rig, linked)

    async def noticed() -> bool:  # the row records that Outlook no longer holds the event
        conn = await asyncpg.connect(rig.dsn)
        try:
            held = await conn.fetchval(
                "SELECT event_id FROM booking_events WHERE booking_id = $1", booking_id
            )
        finally:
            await conn.close()
        return held is None

    await eventually(noticed, timeout_s=30)
    published = await calendar_events(rig, linked)
    assert not [e for e in published if e["type"].endswith("booking_changed.v1")]
    assert len(await outcomes(rig, booking_id)) == 1


async def test_a_write_whose_record_fails_gives_its_lease_up_and_is_made_once(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event is created at Graph, then recording it fails (the database cut the session):
    the runner gives the lease up at once, so the write is retried after its backoff (5 s),
    not when the 45 s lease runs out; the retry finds the event by transactionId."""
    linked = await default_calendar(rig)
    await rig.snapshot(3, (linked,))
    finish = WriteBackRepository.finish
    calls = 0

    async def cut_once(self: WriteBackRepository, *args: Any, **kwargs: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError("session terminated")
        return await finish(self, *args, **kwargs)

    monkeypatch.setattr(WriteBackRepository, "finish", cut_once)
    booking_id = uuid.uuid4()
    await deliver(rig, confirmed(rig, booking_id, *_slot(days=61)))
    (outcome,) = await await_outcome(rig, booking_id, 1, timeout_s=25)  # well inside the lease
    assert outcome["outcome"] == "written"
    assert calls >= 2
    assert len(await events_of_booking(rig, linked, booking_id)) == 1


@pytest.fixture
async def short_lease_rig(
    infra: Any,
    fresh_database: str,
    graph_emulator: Emulator,
    signed_in: SignedIn,
    topic_prefix: str,
) -> AsyncIterator[Rig]:
    """A rig whose write leases end after 10 s: a write whose lease could not be given up
    (the release met a cut session too) is retried within the test's wait."""
    async with running_rig(
        infra,
        fresh_database,
        graph_emulator,
        signed_in,
        topic_prefix,
        delta_every_s=0.2,
        write_back_lease_s=10.0,
    ) as r:
        yield r


async def test_writes_in_flight_when_the_database_drops_its_sessions_are_each_made_once(
    short_lease_rig: Rig, infra: Any
) -> None:
    """What the write-back sees of a PostgreSQL restart: every session terminated while writes
    are in flight (Graph answers slowly, so some are between their Graph call and their
    commit). The runner goes on; each booking ends with one event at Graph and one ``written``
    outcome (a create retried after a lost commit finds its first event by transactionId)."""
    rig = short_lease_rig
    linked = await default_calendar(rig)
    await rig.snapshot(3, (linked,))
    bookings = [uuid.uuid4() for _ in range(10)]
    faults = f"/_emulator/faults/users/{rig.user.user_id}"
    await rig.control("PUT", faults, {"latency_ms": 150, "throttling": False})
    admin = await asyncpg.connect(infra.admin_dsn)
    terminated = 0
    try:
        await deliver(
            rig, *[confirmed(rig, b, *_slot(days=40 + n)) for n, b in enumerate(bookings)]
        )
        for _ in range(4):
            await asyncio.sleep(0.25)
            terminated += await admin.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()) t",
                rig.dsn.rsplit("/", 1)[1],
            )
        rig.app[WRITE_BACK].wake()
        for booking_id in bookings:
            await await_outcome(rig, booking_id, 1, timeout_s=60)
    finally:
        await admin.close()
        await rig.control("DELETE", faults)
    assert terminated > 0
    for booking_id in bookings:
        written = [o for o in await outcomes(rig, booking_id) if o["outcome"] == "written"]
        assert [o["booking_version"] for o in written] == [1], booking_id
        assert len(await events_of_booking(rig, linked, booking_id)) == 1, booking_id
