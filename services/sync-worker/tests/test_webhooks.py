"""Graph webhooks on real PostgreSQL and Kafka: handshake, clientState, 202 only after the ack."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, TopicPartition

from calsync_common.contracts.envelope import decode
from calsync_common.contracts.notifications import GraphChangeReceived, GraphLifecycleReceived
from calsync_common.contracts.topics import GRAPH_NOTIFICATIONS
from calsync_common.settings import HttpSettings, PlatformSettings
from calsync_sync_worker.domain.notifications import hash_client_state
from calsync_sync_worker.entrypoints.http import init_app
from calsync_sync_worker.settings import SyncWorkerSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def worker(
    infra: Any, fresh_database: str, topic_prefix: str
) -> AsyncIterator[TestClient[Any, Any]]:
    settings = SyncWorkerSettings(
        platform=PlatformSettings(kafka_bootstrap=infra.kafka_bootstrap, topic_prefix=topic_prefix),
        http=HttpSettings(port=0),
        database_url=fresh_database,  # type: ignore[arg-type]
    )
    async with TestClient(TestServer(init_app(settings))) as client:
        yield client


async def subscription(dsn: str, client_state: str) -> tuple[str, uuid.UUID, str]:
    sub_id, connection_id, calendar_id = str(uuid.uuid4()), uuid.uuid4(), f"AAMk-{uuid.uuid4()}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO subscriptions (subscription_id, connection_id, calendar_id,"
            " client_state_hash, expires_at) VALUES ($1, $2, $3, $4, $5)",
            sub_id,
            connection_id,
            calendar_id,
            hash_client_state(client_state),
            datetime.now(UTC) + timedelta(days=2),
        )
    finally:
        await conn.close()
    return sub_id, connection_id, calendar_id


def change(sub_id: str, client_state: str | None, event_id: str = "AAMk-e1") -> dict[str, Any]:
    return {
        "subscriptionId": sub_id,
        "subscriptionExpirationDateTime": "2026-12-03T10:00:00+00:00",
        "changeType": "updated",
        "resource": f"Users/u/Events/{event_id}",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": event_id},
        "clientState": client_state,
        "tenantId": "t-1",
    }


class TopicTail:
    """Reads what is published to the notifications topic after it was opened."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.topic = f"{prefix}{GRAPH_NOTIFICATIONS.name}"

    async def __aenter__(self) -> TopicTail:
        await self.consumer.start()
        partitions = self.consumer.partitions_for_topic(self.topic) or set()
        if not partitions:
            await self.consumer._client.force_metadata_update()
            partitions = self.consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        for tp, offset in (await self.consumer.end_offsets(tps)).items():
            self.consumer.seek(tp, offset)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def read(self, subscription_id: str, expected: int, wait_s: float = 10) -> list[Any]:
        found: list[Any] = []
        async with asyncio.timeout(wait_s):
            while len(found) < expected:
                batch = await self.consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for r in records:
                        env = decode(list(r.headers), r.key, r.value)
                        if getattr(env.data, "subscription_id", None) == subscription_id:
                            found.append(env.data)
        return found


async def test_the_validation_handshake_echoes_the_decoded_token(
    worker: TestClient[Any, Any],
) -> None:
    for path in ("/webhooks/graph/notifications", "/webhooks/graph/lifecycle"):
        resp = await worker.post(f"{path}?validationToken=Validation%3A%20Testing%20client")
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert await resp.text() == "Validation: Testing client"


async def test_only_notifications_of_our_subscriptions_with_their_client_state_are_queued(
    worker: TestClient[Any, Any], fresh_database: str, infra: Any, topic_prefix: str
) -> None:
    sub_id, connection_id, calendar_id = await subscription(fresh_database, "s3cret-state")
    async with TopicTail(infra.kafka_bootstrap, topic_prefix) as tail:
        resp = await worker.post(
            "/webhooks/graph/notifications",
            json={
                "value": [
                    change(sub_id, "s3cret-state", "AAMk-e1"),
                    change(sub_id, "forged", "AAMk-e2"),
                    change(sub_id, None, "AAMk-e3"),
                    change(str(uuid.uuid4()), "s3cret-state", "AAMk-e4"),
                ]
            },
        )
        assert resp.status == 202
        queued = await tail.read(sub_id, 1)
        # Nothing else arrives for it: the forged and anonymous ones were dropped.
        with pytest.raises(TimeoutError):
            await tail.read(sub_id, 1, wait_s=1.0)
    (event,) = queued
    assert isinstance(event, GraphChangeReceived)
    assert event.resource_id == "AAMk-e1"
    assert (event.connection_id, event.calendar_id) == (connection_id, calendar_id)
    assert event.partition_key() == f"{connection_id}/{calendar_id}"

    metrics = await (await worker.get("/metrics")).text()
    assert 'outcome="client_state_mismatch"' in metrics
    assert 'outcome="unknown_subscription"' in metrics


async def test_lifecycle_notifications_are_queued_for_the_subscription(
    worker: TestClient[Any, Any], fresh_database: str, infra: Any, topic_prefix: str
) -> None:
    sub_id, _, _ = await subscription(fresh_database, "life-state")
    async with TopicTail(infra.kafka_bootstrap, topic_prefix) as tail:
        resp = await worker.post(
            "/webhooks/graph/lifecycle",
            json={
                "value": [
                    {
                        "subscriptionId": sub_id,
                        "subscriptionExpirationDateTime": "2026-12-03T10:00:00+00:00",
                        "tenantId": "t-1",
                        "clientState": "life-state",
                        "lifecycleEvent": "missed",
                    }
                ]
            },
        )
        assert resp.status == 202
        (event,) = await tail.read(sub_id, 1)
    assert isinstance(event, GraphLifecycleReceived)
    assert event.lifecycle_event == "missed"


async def test_bad_bodies_are_problems_not_crashes(worker: TestClient[Any, Any]) -> None:
    for body in (b"not json", b'{"value": 3}', b'{"value": [{"changeType": "nope"}]}'):
        resp = await worker.post(
            "/webhooks/graph/notifications",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        assert resp.status == 400
        assert (await resp.json())["code"] == "invalid_notification"


@pytest.mark.skipif(
    not os.environ.get("CALSYNC_LOCAL_INFRA"),
    reason="stops the broker: only on the local stack that make test starts",
)
async def test_while_kafka_is_down_the_answer_is_503_so_graph_delivers_again(
    worker: TestClient[Any, Any], fresh_database: str
) -> None:
    sub_id, _, _ = await subscription(fresh_database, "down-state")
    infra_sh = os.environ["CALSYNC_LOCAL_INFRA"]
    await asyncio.to_thread(
        subprocess.run, ["bash", infra_sh, "kafka-stop"], check=True, stdout=subprocess.DEVNULL
    )
    try:
        resp = await worker.post(
            "/webhooks/graph/notifications", json={"value": [change(sub_id, "down-state")]}
        )
        assert resp.status == 503
        assert (await resp.json())["code"] == "notifications_not_queued"
        assert resp.headers["Retry-After"] == "5"
    finally:
        await asyncio.to_thread(
            subprocess.run, ["bash", infra_sh, "kafka-start"], check=True, stdout=subprocess.DEVNULL
        )
    # Graph's retry, once Kafka is back, is taken.
    async with asyncio.timeout(60):
        while True:
            resp = await worker.post(
                "/webhooks/graph/notifications", json={"value": [change(sub_id, "down-state")]}
            )
            if resp.status == 202:
                break
            await asyncio.sleep(0.5)  # the producer reconnects; bounded by the timeout
