"""What the connector learns from Kafka (calendar freshness) and what it erases over time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from calsync_common.contracts.envelope import decode_record
from calsync_common.contracts.sync_status import CalendarSyncStatus
from calsync_common.contracts.topics import SYNC_STATUS
from calsync_common.kafka.producer import EventPublisher
from calsync_common.postgres.uow import PostgresUnitOfWork
from calsync_common.runtime import POOL
from calsync_common.testing import eventually
from calsync_connector.bootstrap import SOURCE
from calsync_connector.service_layer.janitor import Janitor, JanitorConfig
from calsync_connector.service_layer.unit_of_work import PostgresConnectorWork

from .conftest import Harness

pytestmark = pytest.mark.integration


async def connect(harness: Harness) -> tuple[str, str]:
    user = await harness.new_user()
    sub_account = f"sa-{uuid.uuid4().hex[:8]}"
    location = await harness.connect(sub_account, "user-1", user["userPrincipalName"])
    return sub_account, parse_qs(urlsplit(location).query)["outlook_connection_id"][0]


async def test_each_synced_calendar_shows_the_freshness_the_sync_worker_reported(
    harness: Harness, infra: object
) -> None:
    sub_account, connection_id = await connect(harness)
    body = await (await harness.get(sub_account, f"/{connection_id}")).json()
    linked = body["settings"]["linked_calendar_id"]
    synced_at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    publisher = EventPublisher(
        infra.kafka_bootstrap,  # type: ignore[attr-defined]
        client_id="test",
        source="/calsync/sync-worker",
    )
    await publisher.start()
    try:
        for status, at in (("stale", synced_at), ("healthy", synced_at + timedelta(minutes=1))):
            await publisher.publish(
                CalendarSyncStatus(
                    connection_id=uuid.UUID(connection_id),
                    calendar_id=linked,
                    status=status,  # type: ignore[arg-type]
                    subscription="active",
                    last_synced_at=at,
                    changed_at=at,
                ),
                topic=harness.settings.platform.topic(SYNC_STATUS.name),
            )
    finally:
        await publisher.stop()

    async def reported() -> bool:
        view = await (await harness.get(sub_account, f"/{connection_id}")).json()
        calendar = next(c for c in view["calendars"] if c["id"] == linked)
        fresh = calendar["freshness"]
        return fresh is not None and fresh["status"] == "healthy"

    await eventually(reported, timeout_s=60)
    view = await (await harness.get(sub_account, f"/{connection_id}")).json()
    calendar = next(c for c in view["calendars"] if c["id"] == linked)
    assert calendar["freshness"]["last_synced_at"] == "2026-12-01T10:01:00+00:00"
    assert calendar["freshness"]["subscription"] == "active"
    others = [c for c in view["calendars"] if c["id"] != linked]
    assert all(c["freshness"] is None for c in others)  # not synced: nothing to report


async def test_expired_sign_ins_and_old_disconnections_are_erased_with_a_tombstone(
    harness: Harness,
) -> None:
    sub_account, connection_id = await connect(harness)
    await harness.start(sub_account, "user-2")  # a sign-in nobody completes
    path = f"/v1/sub-accounts/{sub_account}/connections/{connection_id}"
    assert (await harness.client.delete(path, headers=harness.headers(sub_account))).status == 200

    uow = PostgresUnitOfWork(harness.client.app[POOL], SOURCE, PostgresConnectorWork)
    later = datetime.now(UTC) + timedelta(days=8)
    janitor = Janitor(uow, JanitorConfig(erase_after=timedelta(days=7)), lambda: later)
    flows, erased = await janitor.sweep()
    assert flows >= 1
    assert erased == 1
    assert await janitor.sweep() == (0, 0)

    assert (await harness.get(sub_account, f"/{connection_id}")).status == 404
    last = (await harness.snapshots(connection_id))[-1]
    assert last.value is None  # the tombstone that erases it from the compacted topic
    headers = [(k, v.encode("latin-1")) for k, v in last.headers.items()]
    tombstone = decode_record(headers, connection_id.encode(), None)
    assert tombstone.source == "/calsync/connector"
