"""Outlook time arriving over a confirmed booking: recorded once, published once through the
outbox in the same transaction, resolved (kept) when the event moves away or goes (real
PostgreSQL, handler level; through the broker with a failing attempt: ``test_replay.py``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from asyncpg import Range

from calsync_availability.adapters import busy_queries
from calsync_availability.bootstrap import MIGRATIONS, SERVICE
from calsync_availability.domain.projection import BookingConflict
from calsync_availability.service_layer.projections import on_calendar_event, on_connection
from calsync_availability.service_layer.unit_of_work import AvailabilityWork
from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.calendar_events import CalendarEventRemoved, CalendarEventUpserted
from calsync_common.contracts.connections import ConnectionSnapshot
from calsync_common.contracts.envelope import Envelope
from calsync_common.contracts.examples import examples
from calsync_common.contracts.topics import BOOKINGS
from calsync_common.kafka.consumer import ConsumedEvent
from calsync_common.postgres.migrations import upgrade
from calsync_common.postgres.uow import PostgresUnitOfWork

pytestmark = pytest.mark.integration

DAY = datetime(2026, 12, 7, tzinfo=UTC)
BASE = next(e for e in examples() if isinstance(e, ConnectionSnapshot))
CAL = "AAMk-conflicts"
SUB = "sub-conflicts"
USER = "user-1"


def at(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


class Setup:
    def __init__(self, uow: PostgresUnitOfWork[AvailabilityWork]) -> None:
        self.uow = uow
        self.connection_id = uuid.uuid4()
        self.sequence = 0

    async def send(self, payload: EventPayload, sequence: int | None = None) -> None:
        if sequence is None:
            self.sequence += 1
            sequence = self.sequence
        handler = on_connection if isinstance(payload, ConnectionSnapshot) else on_calendar_event
        envelope = Envelope(
            "id", "/calsync/test", payload.event_type, None, None, payload, sequence
        )
        message = ConsumedEvent("t", 0, 0, payload.partition_key().encode(), envelope)
        async with self.uow() as work:
            await handler(work, message)

    async def connect(self, version: int, **changes: Any) -> None:
        fields = {
            "connection_id": self.connection_id,
            "version": version,
            "sub_account_id": SUB,
            "user_id": USER,
            "linked_calendar_id": CAL,
            "conflict_calendar_ids": (CAL,),
            "changed_at": at(-1),
            **changes,
        }
        await self.send(BASE.model_copy(update=fields), version)

    async def event(self, event_id: str, start: float, end: float, **fields: Any) -> None:
        await self.send(
            CalendarEventUpserted(
                connection_id=self.connection_id,
                calendar_id=CAL,
                event_id=event_id,
                start=at(start),
                end=at(end),
                show_as=fields.pop("show_as", "busy"),
                observed_at=fields.pop("observed_at", at(0)),
                **fields,
            )
        )

    async def remove(self, event_id: str, observed: float) -> None:
        await self.send(
            CalendarEventRemoved(
                connection_id=self.connection_id,
                calendar_id=CAL,
                event_id=event_id,
                observed_at=at(observed),
            )
        )

    async def book(self, start: float, end: float, status: str = "confirmed") -> uuid.UUID:
        booking_id = uuid.uuid4()
        async with self.uow() as work:
            await work.connection.execute(
                "INSERT INTO bookings (booking_id, group_id, sub_account_id, booking_calendar_id,"
                " user_id, during, status, version, title)"
                " VALUES ($1, $1, $2, 'bc-1', $3, $4, $5, 2, 'Intro call')",
                booking_id,
                SUB,
                USER,
                Range(at(start), at(end)),
                status,
            )
        return booking_id

    async def conflicts(self, booking_id: uuid.UUID) -> list[BookingConflict]:
        async with self.uow() as work:
            return await busy_queries.booking_conflicts(work.connection, [booking_id])

    async def published(self, booking_id: uuid.UUID) -> list[dict[str, Any]]:
        async with self.uow() as work:
            rows = await work.connection.fetch(
                "SELECT headers, value FROM outbox WHERE topic = $1 AND key = $2 ORDER BY sequence",
                BOOKINGS.name,
                str(booking_id),
            )
        out = []
        for r in rows:
            headers = dict(json.loads(r["headers"]))
            out.append({"type": headers["ce_type"], **json.loads(r["value"])})
        return out


@pytest.fixture
async def setup(fresh_database: str) -> AsyncIterator[Setup]:
    await upgrade(fresh_database, SERVICE, MIGRATIONS)
    async with asyncpg.create_pool(fresh_database, min_size=1, max_size=2) as pool:
        yield Setup(PostgresUnitOfWork(pool, "/calsync/availability", AvailabilityWork))


async def test_outlook_time_over_a_booking_is_recorded_and_published_once(setup: Setup) -> None:
    await setup.connect(1)
    booking = await setup.book(10, 11)
    await setup.event("e", 10.5, 11.5, observed_at=at(2))
    (conflict,) = await setup.conflicts(booking)
    assert (conflict.connection_id, conflict.calendar_id, conflict.event_id) == (
        setup.connection_id,
        CAL,
        "e",
    )
    assert (conflict.start, conflict.end, conflict.show_as) == (at(10.5), at(11), "busy")
    assert (conflict.booking_version, conflict.detected_at, conflict.resolved_at) == (
        2,
        at(2),
        None,
    )
    (event,) = await setup.published(booking)
    assert event["type"] == "dev.calsync.booking.conflict_detected.v1"
    assert event["booking_id"] == str(booking) and event["version"] == 2
    assert (event["sub_account_id"], event["user_id"], event["booking_calendar_id"]) == (
        SUB,
        USER,
        "bc-1",
    )
    assert (event["event_id"], event["show_as"]) == ("e", "busy")
    assert datetime.fromisoformat(event["start"]) == at(10)
    assert datetime.fromisoformat(event["conflict_start"]) == at(10.5)
    assert datetime.fromisoformat(event["conflict_end"]) == at(11)

    # The same event changing but still over the booking: the overlap follows, nothing new.
    await setup.event("e", 10.25, 12, observed_at=at(3))
    (conflict,) = await setup.conflicts(booking)
    assert (conflict.start, conflict.end, conflict.detected_at) == (at(10.25), at(11), at(2))
    assert len(await setup.published(booking)) == 1


async def test_a_conflict_is_resolved_when_its_event_moves_away_or_goes(setup: Setup) -> None:
    await setup.connect(1)
    booking = await setup.book(10, 11)
    await setup.event("moves", 10, 11)
    await setup.event("goes", 9, 10.5)
    await setup.event("moves", 12, 13, observed_at=at(4))
    await setup.remove("goes", observed=5)
    resolved = {c.event_id: c.resolved_at for c in await setup.conflicts(booking)}
    assert resolved == {"moves": at(4), "goes": at(5)}  # kept, resolved
    assert len(await setup.published(booking)) == 2

    # Back over the booking: a new conflict again, published again.
    await setup.event("moves", 10.5, 12, observed_at=at(6))
    conflicts = {c.event_id: c for c in await setup.conflicts(booking)}
    assert conflicts["moves"].resolved_at is None and conflicts["moves"].detected_at == at(6)
    assert len(await setup.published(booking)) == 3


async def test_outlook_time_that_blocks_nothing_makes_no_conflict(setup: Setup) -> None:
    await setup.connect(1, conflict_calendar_ids=())  # CAL is only the Linked Calendar
    booking = await setup.book(10, 11)
    await setup.event("not-a-conflict-calendar", 10, 11)
    await setup.connect(2)
    await setup.event("free", 10, 11, show_as="free")
    await setup.event("tentative", 10, 11, show_as="tentative")
    await setup.event("echo", 10, 11, booking_id=booking)
    await setup.event("after", 11, 12)
    cancelled = await setup.book(13, 14, status="cancelled")
    await setup.event("over-a-cancelled-booking", 13, 14)
    # Only the first event becomes a conflict, once its calendar becomes a Conflict Calendar.
    assert [c.event_id for c in await setup.conflicts(booking)] == ["not-a-conflict-calendar"]
    assert await setup.conflicts(cancelled) == []


async def test_events_before_their_connection_conflict_once_it_arrives(setup: Setup) -> None:
    booking = await setup.book(10, 11)
    await setup.event("early", 10, 11)
    assert await setup.conflicts(booking) == []
    await setup.connect(1, changed_at=at(7))
    (conflict,) = await setup.conflicts(booking)
    assert conflict.detected_at == at(7)
    assert len(await setup.published(booking)) == 1
    # Settings that stop the event blocking resolve the conflict; a disconnect does too.
    await setup.connect(2, blocking_show_as=("oof",), changed_at=at(8))
    assert [c.resolved_at for c in await setup.conflicts(booking)] == [at(8)]
    await setup.connect(3, changed_at=at(9))
    await setup.connect(4, status="disconnected", changed_at=at(10))
    assert [c.resolved_at for c in await setup.conflicts(booking)] == [at(10)]
    assert len(await setup.published(booking)) == 2
