"""The busy projection's rules, record by record, on real PostgreSQL (handler level), read back
through the API's queries; and the pure rules of ``domain/projection.py``.

Through the broker (runner, sequences, replay, rollback): ``test_replay.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from calsync_availability.adapters import busy_queries
from calsync_availability.bootstrap import MIGRATIONS, SERVICE
from calsync_availability.domain.projection import (
    CalendarFreshness,
    EventChange,
    ResyncProgress,
    after_page,
    completes,
    latest_per_event,
)
from calsync_availability.service_layer.projections import (
    on_calendar_event,
    on_connection,
    on_sync_status,
)
from calsync_availability.service_layer.unit_of_work import AvailabilityWork
from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.calendar_events import (
    BookingEventChangedInOutlook,
    CalendarEventRemoved,
    CalendarEventUpserted,
    CalendarResyncCompleted,
    CalendarResyncPage,
    resync_events,
)
from calsync_common.contracts.connections import ConnectionSnapshot
from calsync_common.contracts.envelope import Envelope, Tombstone
from calsync_common.contracts.examples import examples
from calsync_common.contracts.sync_status import CalendarSyncStatus
from calsync_common.kafka.consumer import ConsumedEvent, ConsumedTombstone, Message
from calsync_common.postgres.migrations import upgrade
from calsync_common.postgres.uow import PostgresUnitOfWork

DAY = datetime(2026, 12, 7, tzinfo=UTC)
BASE = next(e for e in examples() if isinstance(e, ConnectionSnapshot))
A, B, LINKED = "AAMk-a", "AAMk-b", "AAMk-linked"

Handler = Callable[[AvailabilityWork, Message], Awaitable[None]]


def at(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


class Member:
    """One member with one connection, and the records a test sends about it."""

    def __init__(self, uow: PostgresUnitOfWork[AvailabilityWork]) -> None:
        self.uow = uow
        self.connection_id = uuid.uuid4()
        self.sub_account_id = f"sub-{uuid.uuid4().hex[:6]}"
        self.user_id = "user-1"
        self.sequences: dict[str, int] = {}

    def snapshot(self, version: int, **changes: Any) -> ConnectionSnapshot:
        fields = {
            "connection_id": self.connection_id,
            "version": version,
            "sub_account_id": self.sub_account_id,
            "user_id": self.user_id,
            "linked_calendar_id": LINKED,
            "conflict_calendar_ids": (A, B),
            "blocking_show_as": ("busy",),
            **changes,
        }
        return BASE.model_copy(update=fields)

    def upsert(
        self, event_id: str, start: float, end: float, calendar: str = A, **changes: Any
    ) -> CalendarEventUpserted:
        return CalendarEventUpserted(
            connection_id=self.connection_id,
            calendar_id=calendar,
            event_id=event_id,
            start=at(start),
            end=at(end),
            show_as=changes.pop("show_as", "busy"),
            observed_at=at(0),
            **changes,
        )

    def removal(self, event_id: str, calendar: str = A) -> CalendarEventRemoved:
        return CalendarEventRemoved(
            connection_id=self.connection_id,
            calendar_id=calendar,
            event_id=event_id,
            observed_at=at(0),
        )

    async def send(
        self, handler: Handler, payload: EventPayload, sequence: int | None = None
    ) -> None:
        """Deliver as the runner would; ``sequence`` defaults to the key's next."""
        key = payload.partition_key()
        if sequence is None:
            sequence = self.sequences[key] = self.sequences.get(key, 0) + 1
        envelope = Envelope(
            "id", "/calsync/sync-worker", payload.event_type, None, None, payload, sequence
        )
        async with self.uow() as work:
            await handler(work, ConsumedEvent("t", 0, 0, key.encode(), envelope))

    async def connect(self, version: int, **changes: Any) -> None:
        await self.send(on_connection, self.snapshot(version, **changes), version)

    async def events(self, *payloads: EventPayload) -> None:
        for payload in payloads:
            await self.send(on_calendar_event, payload)

    async def tombstone(self) -> None:
        async with self.uow() as work:
            key = str(self.connection_id)
            await on_connection(
                work, ConsumedTombstone("t", 0, 0, Tombstone(key, None, None, None))
            )

    async def busy(
        self, start: float = -24, end: float = 48
    ) -> list[tuple[str, str, datetime, datetime]]:
        async with self.uow() as work:
            found = await busy_queries.outlook_busy(
                work.connection, self.sub_account_id, [self.user_id], at(start), at(end)
            )
        assert all(
            b.user_id == self.user_id and b.connection_id == self.connection_id for b in found
        )
        return [(b.event_id, b.show_as, b.start, b.end) for b in found]

    async def busy_ids(self) -> list[str]:
        return [event_id for event_id, *_ in await self.busy()]

    async def stored(self) -> dict[tuple[str, str], tuple[str, int]]:
        """(calendar, event) → (show_as, ce_sequence) of every stored row of the connection."""
        async with self.uow() as work:
            rows = await work.connection.fetch(
                "SELECT calendar_id, event_id, show_as, ce_sequence FROM outlook_events"
                " WHERE connection_id = $1",
                self.connection_id,
            )
        return {(r["calendar_id"], r["event_id"]): (r["show_as"], r["ce_sequence"]) for r in rows}


@pytest.fixture
async def uow(fresh_database: str) -> AsyncIterator[PostgresUnitOfWork[AvailabilityWork]]:
    await upgrade(fresh_database, SERVICE, MIGRATIONS)
    async with asyncpg.create_pool(fresh_database, min_size=1, max_size=2) as pool:
        yield PostgresUnitOfWork(pool, "/calsync/availability", AvailabilityWork)


@pytest.fixture
def member(uow: PostgresUnitOfWork[AvailabilityWork]) -> Member:
    return Member(uow)


pytestmark = pytest.mark.integration


# --- what blocks -------------------------------------------------------------------------------


async def test_busy_blocks_free_is_kept_but_blocks_nothing(member: Member) -> None:
    await member.connect(1)
    await member.events(
        member.upsert("busy", 9, 10),
        member.upsert("free", 10, 11, show_as="free"),
        member.upsert("tentative", 11, 12, show_as="tentative"),
        member.upsert("oof", 12, 13, show_as="oof"),
    )
    assert await member.busy() == [("busy", "busy", at(9), at(10))]
    assert set(await member.stored()) == {(A, "busy"), (A, "free"), (A, "tentative"), (A, "oof")}
    # The window is half-open and overlap-based.
    assert await member.busy(9.5, 9.75) == [("busy", "busy", at(9), at(10))]
    assert await member.busy(10, 11) == []


async def test_opted_in_statuses_block_and_opting_out_releases_them(member: Member) -> None:
    await member.connect(1, blocking_show_as=("busy", "tentative"))
    await member.events(
        member.upsert("busy", 9, 10),
        member.upsert("tentative", 11, 12, show_as="tentative"),
        member.upsert("free", 13, 14, show_as="free"),
    )
    assert await member.busy_ids() == ["busy", "tentative"]
    await member.connect(2, blocking_show_as=("busy",))
    assert await member.busy_ids() == ["busy"]


async def test_events_before_their_connection_block_once_it_arrives(member: Member) -> None:
    await member.events(member.upsert("early", 9, 10))
    assert await member.busy_ids() == []  # no member known yet
    assert set(await member.stored()) == {(A, "early")}
    await member.connect(1)
    assert await member.busy_ids() == ["early"]


async def test_echoes_of_bookings_add_no_busy_time(member: Member) -> None:
    await member.connect(1)
    await member.events(
        member.upsert("echo", 9, 10, calendar=LINKED, booking_id=uuid.uuid4()),
        member.upsert("echo-in-conflict-calendar", 9, 10, booking_id=uuid.uuid4()),
    )
    assert await member.busy_ids() == []
    assert set(await member.stored()) == {(LINKED, "echo"), (A, "echo-in-conflict-calendar")}


async def test_only_conflict_calendars_block(member: Member) -> None:
    await member.connect(1, conflict_calendar_ids=(A,))
    await member.events(member.upsert("linked", 9, 10, calendar=LINKED), member.upsert("a", 11, 12))
    assert await member.busy_ids() == ["a"]
    assert set(await member.stored()) == {(LINKED, "linked"), (A, "a")}


# --- order, duplicates, removals ---------------------------------------------------------------


async def test_older_and_duplicated_records_change_nothing(member: Member) -> None:
    await member.connect(1)
    await member.send(on_calendar_event, member.upsert("e", 9, 10), 5)
    await member.send(on_calendar_event, member.upsert("e", 12, 13), 3)  # older
    await member.send(on_calendar_event, member.upsert("e", 14, 15), 5)  # duplicate sequence
    await member.send(on_calendar_event, member.upsert("other", 16, 17), 4)  # older, per calendar
    assert await member.busy() == [("e", "busy", at(9), at(10))]
    assert await member.stored() == {(A, "e"): ("busy", 5)}
    await member.send(on_calendar_event, member.upsert("e", 11, 12, show_as="free"), 6)
    assert await member.stored() == {(A, "e"): ("free", 6)}
    assert await member.busy_ids() == []


async def test_a_removal_is_not_undone_by_a_late_older_upsert(member: Member) -> None:
    await member.connect(1)
    await member.send(on_calendar_event, member.upsert("e", 9, 10), 1)
    await member.send(on_calendar_event, member.removal("e"), 3)
    await member.send(on_calendar_event, member.upsert("e", 9, 10), 2)  # late, older
    assert await member.stored() == {}
    assert await member.busy_ids() == []


async def test_cancellation_releases_time(member: Member) -> None:
    await member.connect(1)
    await member.events(member.upsert("e", 9, 10), member.upsert("f", 11, 12))
    await member.events(member.upsert("e", 9, 10, is_cancelled=True))
    assert await member.busy_ids() == ["f"]
    assert set(await member.stored()) == {(A, "f")}


async def test_other_event_types_on_the_topic_are_not_the_projections(member: Member) -> None:
    await member.connect(1)
    await member.events(member.upsert("e", 9, 10))
    moved = BookingEventChangedInOutlook(
        connection_id=member.connection_id,
        calendar_id=A,
        event_id="e",
        booking_id=uuid.uuid4(),
        booking_version=1,
        change="deleted",
        observed_at=at(0),
    )
    await member.events(moved)
    assert await member.busy_ids() == ["e"]


# --- resyncs -----------------------------------------------------------------------------------


def resync(
    member: Member, ids: list[str], window: tuple[float, float] = (0, 24)
) -> list[EventPayload]:
    return resync_events(
        member.connection_id, A, at(window[0]), at(window[1]), ids, at(1), uuid.uuid4()
    )


async def test_a_complete_resync_removes_what_it_did_not_list_in_its_window(member: Member) -> None:
    await member.connect(1)
    await member.events(
        member.upsert("kept", 9, 10),
        member.upsert("gone", 11, 12),
        member.upsert("gone-free", 13, 14, show_as="free"),
        member.upsert("outside", 30, 31),
        member.upsert("other-calendar", 9, 10, calendar=B),
    )
    await member.events(*resync(member, ["kept"]))
    assert set(await member.stored()) == {(A, "kept"), (A, "outside"), (B, "other-calendar")}
    async with member.uow() as work:
        left = await work.connection.fetchval(
            "SELECT (SELECT count(*) FROM outlook_resyncs)"
            " + (SELECT count(*) FROM outlook_resync_ids)"
        )
    assert left == 0


async def test_an_incomplete_resync_removes_nothing(member: Member) -> None:
    await member.connect(1)
    await member.events(member.upsert("a", 9, 10), member.upsert("b", 11, 12))
    many = [f"id-{n}" for n in range(1_500)]  # two pages
    started, first, second, completed = resync(member, many)
    assert isinstance(second, CalendarResyncPage) and isinstance(completed, CalendarResyncCompleted)
    await member.events(started, first, completed)  # a page missed
    await member.events(second, completed)  # its Started missed
    assert set(await member.stored()) == {(A, "a"), (A, "b")}


# --- releases ----------------------------------------------------------------------------------


async def test_settings_changes_release_time_and_rows_of_calendars_no_longer_synced(
    member: Member,
) -> None:
    await member.connect(1)
    await member.events(
        member.upsert("a", 9, 10),
        member.upsert("b", 11, 12, calendar=B),
        member.upsert("l", 13, 14, calendar=LINKED),
    )
    assert await member.busy_ids() == ["a", "b"]
    # B stops being a Conflict Calendar and is no longer synced: its time and rows go.
    await member.connect(2, conflict_calendar_ids=(A,))
    assert await member.busy_ids() == ["a"]
    assert set(await member.stored()) == {(A, "a"), (LINKED, "l")}
    await member.events(member.upsert("b-late", 15, 16, calendar=B))
    assert set(await member.stored()) == {(A, "a"), (LINKED, "l")}
    # An older snapshot arriving late changes nothing.
    await member.connect(1)
    assert await member.busy_ids() == ["a"]


async def test_reauth_keeps_time_but_disconnect_and_tombstone_release_it(member: Member) -> None:
    await member.connect(1)
    await member.events(member.upsert("a", 9, 10))
    await member.connect(2, status="reauth_required")
    assert await member.busy_ids() == ["a"]
    await member.connect(3, status="disconnected")
    assert await member.busy_ids() == []
    assert await member.stored() == {}
    await member.events(member.upsert("late", 11, 12))
    assert await member.stored() == {}
    await member.tombstone()
    await member.events(member.upsert("later", 13, 14))
    assert await member.stored() == {}
    async with member.uow() as work:
        assert (
            await busy_queries.member_connection(
                work.connection, member.sub_account_id, member.user_id
            )
            is None
        )


async def test_a_tombstone_erases_what_came_before_it(member: Member) -> None:
    await member.connect(1)
    await member.events(member.upsert("a", 9, 10))
    await member.tombstone()
    assert await member.stored() == {}
    assert await member.busy_ids() == []


# --- freshness and the member's connection ----------------------------------------------------


def status(member: Member, calendar: str, changed: float, **fields: Any) -> CalendarSyncStatus:
    return CalendarSyncStatus(
        connection_id=member.connection_id,
        calendar_id=calendar,
        status=fields.pop("status", "healthy"),
        subscription=fields.pop("subscription", "active"),
        last_synced_at=fields.pop("last_synced_at", at(changed)),
        changed_at=at(changed),
        **fields,
    )


async def test_freshness_keeps_the_newest_status_per_calendar(member: Member) -> None:
    await member.connect(1, conflict_calendar_ids=(A, B))
    await member.send(on_sync_status, status(member, A, 2))
    await member.send(on_sync_status, status(member, A, 1, status="failed", last_error="x"))
    await member.send(on_sync_status, status(member, B, 3, status="stale", subscription="missing"))
    async with member.uow() as work:
        rows = await busy_queries.calendar_freshness(
            work.connection, member.sub_account_id, [member.user_id]
        )
    by_calendar = {f.calendar_id: f for f in rows}
    assert set(by_calendar) == {A, B}
    assert (by_calendar[A].status, by_calendar[A].last_synced_at) == ("healthy", at(2))
    now, max_age = at(2.5), timedelta(hours=1)
    assert not by_calendar[A].is_stale(now, max_age)
    assert by_calendar[A].is_stale(at(4), max_age)  # too old
    assert by_calendar[B].is_stale(now, max_age)


async def test_a_connection_needing_reauthorization_makes_its_calendars_stale(
    member: Member,
) -> None:
    await member.connect(1, conflict_calendar_ids=(A,))
    await member.send(on_sync_status, status(member, A, 2))
    await member.connect(2, conflict_calendar_ids=(A,), status="reauth_required")
    async with member.uow() as work:
        (fresh,) = await busy_queries.calendar_freshness(
            work.connection, member.sub_account_id, [member.user_id]
        )
        connection = await busy_queries.member_connection(
            work.connection, member.sub_account_id, member.user_id
        )
    assert fresh.connection_status == "reauth_required"
    assert fresh.is_stale(at(2), timedelta(hours=1))
    assert connection is not None and connection.status == "reauth_required"
    assert connection.conflict_calendar_ids == (A,) and connection.linked_calendar_id == LINKED


async def test_sync_status_tombstone_forgets_the_calendar(member: Member) -> None:
    await member.connect(1, conflict_calendar_ids=(A,))
    await member.send(on_sync_status, status(member, A, 2))
    async with member.uow() as work:
        key = f"{member.connection_id}/{A}"
        await on_sync_status(work, ConsumedTombstone("t", 0, 0, Tombstone(key, None, None, None)))
        (fresh,) = await busy_queries.calendar_freshness(
            work.connection, member.sub_account_id, [member.user_id]
        )
    assert fresh.status is None and fresh.is_stale(at(2), timedelta(hours=1))


# --- pure rules --------------------------------------------------------------------------------


def test_latest_per_event_keeps_the_last_change_of_each_event() -> None:
    c = uuid.uuid4()
    changes = [
        EventChange(c, A, "x", 1, True),
        EventChange(c, A, "y", 2, True),
        EventChange(c, A, "x", 3, False),
        EventChange(c, A, "y", 1, False),  # older than what came before it
    ]
    assert latest_per_event(changes) == [changes[1], changes[2]]


def test_a_resync_completes_only_when_seen_whole() -> None:
    conn, rid = uuid.uuid4(), uuid.uuid4()
    pages = [
        CalendarResyncPage(
            connection_id=conn, calendar_id=A, resync_id=rid, page=n, event_ids=(f"e{n}",)
        )
        for n in range(2)
    ]
    done = CalendarResyncCompleted(
        connection_id=conn,
        calendar_id=A,
        resync_id=rid,
        pages=2,
        total_event_ids=2,
        observed_at=at(0),
    )
    start = ResyncProgress(rid)
    whole = after_page(after_page(start, pages[0]), pages[1])
    assert completes(whole, done)
    assert not completes(after_page(start, pages[1]), done)  # page 0 missed
    assert not completes(None, done)  # Started missed
    assert after_page(ResyncProgress(uuid.uuid4()), pages[0]) is None  # another resync's page


def test_freshness_without_any_report_is_stale() -> None:
    never = CalendarFreshness("u", uuid.uuid4(), A, "active", None, None, None, None, None)
    assert never.is_stale(at(0), timedelta(days=1))
