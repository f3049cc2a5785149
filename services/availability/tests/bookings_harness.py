"""The availability service served on real PostgreSQL and Kafka, for the booking tests: a client
with tokens, calendars made through the API, and Outlook state fed through the projection's own
handlers (as its consumers would apply it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from calsync_availability.entrypoints.http import init_app
from calsync_availability.service_layer.projections import (
    on_calendar_event,
    on_connection,
    on_sync_status,
)
from calsync_availability.service_layer.unit_of_work import AvailabilityWork
from calsync_availability.settings import AvailabilitySettings
from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.calendar_events import CalendarEventUpserted
from calsync_common.contracts.connections import ConnectionSnapshot, MicrosoftAccount
from calsync_common.contracts.envelope import Envelope
from calsync_common.contracts.sync_status import CalendarSyncStatus
from calsync_common.contracts.topics import BOOKINGS
from calsync_common.http.auth import mint
from calsync_common.kafka.consumer import ConsumedEvent
from calsync_common.postgres.uow import PostgresUnitOfWork
from calsync_common.runtime import POOL, PUBLISHER
from calsync_common.settings import HttpSettings, PlatformSettings
from calsync_common.testing import published

#: A Monday far ahead, so minimum notice never bites.
DAY = datetime(2030, 1, 7, tzinfo=UTC)
ALL_WEEK = [
    {"day": d, "start": "00:00", "end": "24:00"}
    for d in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
]


def at(hour: float, day: int = 0) -> datetime:
    return DAY + timedelta(days=day, hours=hour)


@dataclass
class Member:
    user_id: str
    connection_id: uuid.UUID = field(default_factory=uuid.uuid4)
    calendar_id: str = "AAMk-conflicts"
    sequence: int = 0


class Harness:
    def __init__(self, client: TestClient[Any, Any], settings: AvailabilitySettings) -> None:
        self.client = client
        self.settings = settings
        self.sub = f"sa-{uuid.uuid4().hex[:8]}"
        self.pool: asyncpg.Pool = client.server.app[POOL]  # type: ignore[union-attr]
        self.uow = PostgresUnitOfWork(self.pool, "/calsync/test", AvailabilityWork)

    def headers(self, key: str | None = None) -> dict[str, str]:
        token = mint(self.settings.auth, subject="tester", sub_account_id=self.sub)
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    async def calendar(self, type_: str, users: list[str], **fields: Any) -> str:
        body = {
            "name": f"{type_} calendar",
            "type": type_,
            "members": [
                {"user_id": u, "time_zone": "UTC", "working_hours": ALL_WEEK} for u in users
            ],
            "slot_minutes": 60,
            **fields,
        }
        resp = await self.client.post(
            f"/v1/sub-accounts/{self.sub}/calendars", json=body, headers=self.headers()
        )
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["id"])

    async def book(
        self, calendar_id: str, start: datetime, end: datetime, key: str | None = None, **more: Any
    ) -> Any:
        body = {
            "booking_calendar_id": calendar_id,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "title": "Intro call",
            **more,
        }
        return await self.client.post(
            f"/v1/sub-accounts/{self.sub}/bookings",
            json=body,
            headers=self.headers(key or uuid.uuid4().hex),
        )

    # --- Outlook state, through the projection's handlers ---------------------------------

    async def feed(self, member: Member, payload: EventPayload) -> None:
        handler = {
            ConnectionSnapshot: on_connection,
            CalendarEventUpserted: on_calendar_event,
            CalendarSyncStatus: on_sync_status,
        }[type(payload)]
        member.sequence += 1
        envelope = Envelope(
            str(uuid.uuid4()),
            "/calsync/test",
            payload.event_type,
            None,
            None,
            payload,
            member.sequence,
        )
        message = ConsumedEvent("t", 0, 0, payload.partition_key().encode(), envelope)
        async with self.uow() as work:
            await handler(work, message)

    async def connect(
        self, member: Member, *, status: str = "active", sync_preference: str = "one_way"
    ) -> None:
        await self.feed(
            member,
            ConnectionSnapshot(
                connection_id=member.connection_id,
                version=member.sequence + 1,
                sub_account_id=self.sub,
                user_id=member.user_id,
                account=MicrosoftAccount(
                    tenant_id="t", object_id=member.user_id, username="u@x", is_personal=False
                ),
                status=status,  # type: ignore[arg-type]
                sync_preference=sync_preference,  # type: ignore[arg-type]
                linked_calendar_id=member.calendar_id,
                conflict_calendar_ids=(member.calendar_id,),
                changed_at=datetime.now(UTC),
            ),
        )

    async def synced(self, member: Member, *, ago: timedelta = timedelta(0)) -> None:
        await self.feed(
            member,
            CalendarSyncStatus(
                connection_id=member.connection_id,
                calendar_id=member.calendar_id,
                status="healthy",
                subscription="active",
                last_synced_at=datetime.now(UTC) - ago,
                changed_at=datetime.now(UTC),
            ),
        )

    async def outlook_busy(self, member: Member, start: datetime, end: datetime) -> str:
        event_id = f"evt-{uuid.uuid4().hex[:10]}"
        await self.feed(
            member,
            CalendarEventUpserted(
                connection_id=member.connection_id,
                calendar_id=member.calendar_id,
                event_id=event_id,
                start=start,
                end=end,
                show_as="busy",
                observed_at=datetime.now(UTC),
            ),
        )
        return event_id

    async def member(self, user_id: str) -> Member:
        """A member with a healthy, freshly synced Outlook connection."""
        m = Member(user_id)
        await self.connect(m)
        await self.synced(m)
        return m

    async def outbox(self, booking_id: str) -> list[str]:
        """The types of what the service published for the booking (sent or still queued)."""
        publisher = self.client.server.app[PUBLISHER]  # type: ignore[union-attr]
        events = await published(self.pool, publisher, BOOKINGS.name, booking_id)
        return [e.headers["ce_type"] for e in events]


def settings_for(kafka_bootstrap: str, dsn: str, topic_prefix: str) -> AvailabilitySettings:
    return AvailabilitySettings(
        platform=PlatformSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix),
        http=HttpSettings(port=0),
        database_url=dsn,  # type: ignore[arg-type]
    )


async def serve(settings: AvailabilitySettings) -> AsyncIterator[Harness]:
    async with TestClient(TestServer(init_app(settings))) as client:
        yield Harness(client, settings)


OVERLAPS = """
SELECT count(*) FROM bookings a JOIN bookings b
  ON a.sub_account_id = b.sub_account_id AND a.user_id = b.user_id
 AND a.booking_id < b.booking_id AND a.during && b.during
WHERE a.status = 'confirmed' AND b.status = 'confirmed'
"""
