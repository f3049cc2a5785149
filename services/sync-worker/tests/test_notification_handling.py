"""What a queued Graph notification does to the sync-worker's work (real PostgreSQL, handler)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from calsync_common.contracts.envelope import Envelope
from calsync_common.contracts.notifications import GraphChangeReceived, GraphLifecycleReceived
from calsync_common.kafka.consumer import ConsumedEvent
from calsync_common.postgres.migrations import upgrade
from calsync_common.postgres.uow import PostgresUnitOfWork
from calsync_sync_worker.adapters.repository import SubscriptionRecord
from calsync_sync_worker.bootstrap import MIGRATIONS, SERVICE
from calsync_sync_worker.service_layer.notifications import on_notification, on_notifications
from calsync_sync_worker.service_layer.unit_of_work import SyncWork

pytestmark = pytest.mark.integration
CONNECTION = uuid.uuid4()
CALENDAR = "AAMk-cal"
LATER = datetime.now(UTC) + timedelta(hours=1)


@pytest.fixture
async def db(fresh_database: str) -> AsyncIterator[tuple[PostgresUnitOfWork[SyncWork], Any]]:
    await upgrade(fresh_database, SERVICE, MIGRATIONS)
    async with asyncpg.create_pool(fresh_database, min_size=1, max_size=2) as pool:
        await pool.execute(
            "INSERT INTO calendars (connection_id, calendar_id, wanted, next_round_at,"
            " subscription_due_at) VALUES ($1, $2, true, $3, $3)",
            CONNECTION,
            CALENDAR,
            LATER,
        )
        uow = PostgresUnitOfWork(pool, "/calsync/test", SyncWork)
        async with uow() as work:
            await work.sync.save_subscription(
                SubscriptionRecord("sub-1", CONNECTION, CALENDAR, b"h", LATER + timedelta(days=2))
            )
        yield uow, pool


async def deliver(uow: PostgresUnitOfWork[SyncWork], payload: Any) -> None:
    envelope = Envelope("id", "/calsync/sync-worker", payload.event_type, None, None, payload)
    async with uow() as work:
        await on_notification(work, ConsumedEvent("t", 0, 0, b"k", envelope))


def lifecycle(event: str) -> GraphLifecycleReceived:
    return GraphLifecycleReceived(
        subscription_id="sub-1",
        connection_id=CONNECTION,
        calendar_id=CALENDAR,
        tenant_id="t",
        lifecycle_event=event,  # type: ignore[arg-type]
        subscription_expires_at=None,
        received_at=datetime.now(UTC),
    )


async def state(pool: Any) -> Any:
    return await pool.fetchrow(
        "SELECT c.next_round_at <= now() AS round_due,"
        " c.subscription_due_at <= now() AS upkeep_due,"
        " (SELECT s.expires_at <= now() FROM subscriptions s"
        "  WHERE s.subscription_id = 'sub-1') AS expired,"
        " (SELECT count(*) FROM subscriptions) AS subscriptions"
        " FROM calendars c"
    )


async def test_a_change_makes_a_round_due_and_nothing_else(db: Any) -> None:
    uow, pool = db
    change = GraphChangeReceived(
        subscription_id="sub-1",
        connection_id=CONNECTION,
        calendar_id=CALENDAR,
        tenant_id="t",
        change_type="updated",
        resource="Users/u/Events/e",
        resource_id="e",
        subscription_expires_at=None,
        received_at=datetime.now(UTC),
    )
    for _ in range(3):  # duplicates coalesce: the round is simply due
        await deliver(uow, change)
    s = await state(pool)
    assert (s["round_due"], s["upkeep_due"], s["expired"]) == (True, False, False)


@pytest.mark.parametrize(
    ("event", "round_due", "upkeep_due", "subscriptions", "expired"),
    [
        ("missed", True, False, 1, False),
        ("subscriptionRemoved", True, True, 0, None),
        ("reauthorizationRequired", False, True, 1, True),
    ],
)
async def test_lifecycle_notifications_drive_rounds_and_upkeep(
    db: Any, event: str, round_due: bool, upkeep_due: bool, subscriptions: int, expired: Any
) -> None:
    uow, pool = db
    await deliver(uow, lifecycle(event))
    s = await state(pool)
    assert (s["round_due"], s["upkeep_due"], s["subscriptions"], s["expired"]) == (
        round_due,
        upkeep_due,
        subscriptions,
        expired,
    )


async def test_a_late_removal_notice_leaves_the_subscription_that_replaced_it(db: Any) -> None:
    """Graph's ``subscriptionRemoved`` for sub-0, arriving after the upkeep replaced sub-0 by
    sub-1 (its renewal met the 404 first): sub-1 stays and no recreation is asked for; the
    calendar is read for what was missed."""
    uow, pool = db
    late = lifecycle("subscriptionRemoved").model_copy(update={"subscription_id": "sub-0"})
    await deliver(uow, late)
    s = await state(pool)
    assert (s["round_due"], s["upkeep_due"], s["subscriptions"], s["expired"]) == (
        True,
        False,
        1,
        False,
    )


async def _claim_and_finish(uow: Any, pool: Any, *, notify_meanwhile: bool) -> bool:
    """Claim the calendar's round, maybe take a notification, finish: is a round due now?"""
    await pool.execute("UPDATE calendars SET next_round_at = now() - interval '1 second'")
    async with uow() as work:
        (claimed,) = (await work.sync.claim_rounds("replica-1", 60, 10)).items
    if notify_meanwhile:
        await deliver(
            uow,
            GraphChangeReceived(
                subscription_id="sub-1",
                connection_id=CONNECTION,
                calendar_id=CALENDAR,
                tenant_id="t",
                change_type="updated",
                resource="Users/o/Events/e",
                resource_id="e",
                subscription_expires_at=None,
                received_at=datetime.now(UTC),
            ),
        )
    async with uow() as work:
        kept = await work.sync.finish_round(
            "replica-1",
            claimed,
            delta_link="https://graph/delta?token=1",
            window_start=None,
            window_end=None,
            synced_at=datetime.now(UTC),
            next_round_at=LATER,
            failures=0,
            error=None,
        )
    assert kept
    return bool((await state(pool))["round_due"])


async def _active_connection(pool: Any) -> None:
    await pool.execute(
        "INSERT INTO connections (connection_id, version, sub_account_id, user_id, tenant_id,"
        " object_id, status, conflict_calendar_ids, sync_preference, changed_at)"
        " VALUES ($1, 1, 's', 'u', 't', 'o', 'active', $2, 'one_way', now())",
        CONNECTION,
        [CALENDAR],
    )


async def test_a_notification_during_a_round_keeps_the_next_round_due(db: Any) -> None:
    uow, pool = db
    await _active_connection(pool)
    # The round may have read Graph before the change the notification announces.
    assert await _claim_and_finish(uow, pool, notify_meanwhile=True)
    # Without one, the round's own schedule holds.
    assert not await _claim_and_finish(uow, pool, notify_meanwhile=False)


async def test_a_run_of_notifications_makes_rounds_due_in_one_go(db: Any) -> None:
    uow, pool = db
    change = GraphChangeReceived(
        subscription_id="sub-1",
        connection_id=CONNECTION,
        calendar_id=CALENDAR,
        tenant_id="t",
        change_type="created",
        resource="Users/o/Events/e",
        resource_id="e",
        subscription_expires_at=None,
        received_at=datetime.now(UTC),
    )
    batch = [
        ConsumedEvent(
            "t", 0, n, b"k", Envelope("id", "/calsync/sync-worker", p.event_type, None, None, p)
        )
        for n, p in enumerate([change, change, lifecycle("reauthorizationRequired"), change])
    ]
    async with uow() as work:
        await on_notifications(work, batch)
    row = await state(pool)
    assert row["round_due"]  # the changes, however many
    assert row["upkeep_due"]  # and the lifecycle notification among them
    assert row["expired"]


async def test_a_calendar_the_other_loop_holds_is_left_due_and_claimed_after(db: Any) -> None:
    """The delta runner and the subscription upkeep lease different columns of one calendar
    row. While one of them holds the row locked, the other's claim skips it (SKIP LOCKED) and
    says so, so that it looks again in a moment instead of at its next poll."""
    uow, pool = db
    await _active_connection(pool)
    await pool.execute(
        "UPDATE calendars SET next_round_at = now() - interval '1 second',"
        " subscription_due_at = now() - interval '1 second'"
    )
    async with pool.acquire() as other, other.transaction():
        await other.execute("SELECT 1 FROM calendars FOR NO KEY UPDATE")  # the other loop
        async with uow() as work:
            held = await work.sync.claim_rounds("replica-1", 60, 10)
            upkeep_held = await work.sync.claim_subscription_work("replica-1", 60, 10)
    assert (held.items, held.left_due) == ([], True)
    assert (upkeep_held.items, upkeep_held.left_due) == ([], True)
    async with uow() as work:
        claimed = await work.sync.claim_rounds("replica-1", 60, 10)
        again = await work.sync.claim_rounds("replica-2", 60, 10)
    assert [w.calendar_id for w in claimed.items] == [CALENDAR]
    assert not claimed.left_due
    assert (again.items, again.left_due) == ([], False)  # leased: nothing left due
