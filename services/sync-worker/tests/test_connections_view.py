"""The sync-worker's view of connections, built from snapshots (real PostgreSQL, handler level)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from calsync_common.contracts.connections import ConnectionSnapshot
from calsync_common.contracts.envelope import Envelope, Tombstone
from calsync_common.contracts.examples import examples
from calsync_common.kafka.consumer import ConsumedEvent, ConsumedTombstone
from calsync_common.postgres.migrations import upgrade
from calsync_common.postgres.uow import PostgresUnitOfWork
from calsync_sync_worker.bootstrap import MIGRATIONS, SERVICE
from calsync_sync_worker.service_layer.connections import on_connection
from calsync_sync_worker.service_layer.unit_of_work import SyncWork

pytestmark = pytest.mark.integration
BASE = next(e for e in examples() if isinstance(e, ConnectionSnapshot))


@pytest.fixture
async def uow(fresh_database: str) -> AsyncIterator[PostgresUnitOfWork[SyncWork]]:
    await upgrade(fresh_database, SERVICE, MIGRATIONS)
    async with asyncpg.create_pool(fresh_database, min_size=1, max_size=2) as pool:
        yield PostgresUnitOfWork(pool, "/calsync/test", SyncWork)


def snapshot(version: int, **changes: Any) -> ConnectionSnapshot:
    return BASE.model_copy(update={"version": version, **changes})


async def deliver(uow: PostgresUnitOfWork[SyncWork], payload: ConnectionSnapshot | None) -> None:
    message: Any
    if payload is None:
        message = ConsumedTombstone("t", 0, 0, Tombstone(str(BASE.connection_id), None, None, None))
    else:
        envelope = Envelope("id", "/calsync/connector", payload.event_type, None, None, payload)
        message = ConsumedEvent("t", 0, 0, b"k", envelope)
    async with uow() as work:
        await on_connection(work, message)


async def calendars(uow: PostgresUnitOfWork[SyncWork]) -> dict[str, tuple[bool, bool]]:
    async with uow() as work:
        return await work.sync.calendars(BASE.connection_id)


async def test_calendars_follow_the_snapshots_in_version_order(
    uow: PostgresUnitOfWork[SyncWork],
) -> None:
    linked, other, third = "AAMk-linked", "AAMk-other", "AAMk-third"
    await deliver(uow, snapshot(3, linked_calendar_id=linked, conflict_calendar_ids=(other,)))
    assert await calendars(uow) == {linked: (True, False), other: (True, False)}

    # An older snapshot arriving late changes nothing.
    await deliver(uow, snapshot(2, linked_calendar_id=None, conflict_calendar_ids=(third,)))
    assert await calendars(uow) == {linked: (True, False), other: (True, False)}

    # A calendar dropped from the settings is let go of (kept until unsubscribed).
    await deliver(uow, snapshot(4, linked_calendar_id=linked, conflict_calendar_ids=()))
    assert await calendars(uow) == {linked: (True, False), other: (False, False)}

    # Reauthorization needed: paused, not forgotten (its delta link survives a reconnect).
    await deliver(uow, snapshot(5, linked_calendar_id=linked, status="reauth_required"))
    assert (await calendars(uow))[linked] == (True, True)
    await deliver(uow, snapshot(6, linked_calendar_id=linked, status="active"))
    assert (await calendars(uow))[linked] == (True, False)

    await deliver(uow, snapshot(7, status="disconnected"))
    assert all(not wanted for wanted, _ in (await calendars(uow)).values())

    await deliver(uow, None)  # the tombstone
    assert await calendars(uow) == {}
