"""The idempotent producer across a broker restart, on the local stack's real Kafka.

Found in the sync-worker's restart test, then here: sending while the broker stops and starts
fails a batch (``LeaderNotAvailableError``), after which aiokafka's producer numbered every
later batch of that partition past the gap, and the broker refused each one
(``OutOfOrderSequenceNumber``) for as long as the process lived. ``EventPublisher`` replaces a
producer that meets such an error, so sending works again once the broker is back.
"""

from __future__ import annotations

import asyncio
import collections
import os
import uuid

import pytest

from calsync_common.kafka.admin import ensure_topics
from calsync_common.kafka.producer import RENEWALS, EventPublisher
from calsync_common.runtime import cluster_topics
from calsync_common.testing import eventually, local_infra

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("CALSYNC_LOCAL_INFRA"),
        reason="restarts the broker: only on the local stack that make test starts",
    ),
]


def _renewals() -> float:
    return sum(s.value for m in RENEWALS.collect() for s in m.samples if s.name.endswith("_total"))


async def test_sending_through_a_broker_restart_works_again_once_the_broker_is_back(
    infra: object,
) -> None:
    bootstrap = infra.kafka_bootstrap  # type: ignore[attr-defined]
    prefix = f"pr{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, cluster_topics(prefix))
    topic = f"{prefix}calsync.sync-status.v1"
    publisher = EventPublisher(bootstrap, client_id="restart-test", source="/calsync/test")
    await publisher.start()
    outcomes: collections.Counter[str] = collections.Counter()
    stopping = asyncio.Event()

    async def keep_sending() -> None:
        """Batches of 30 keys (all partitions), each awaited: what the relay does."""
        n = 0
        while not stopping.is_set():
            futures = []
            for k in range(30):
                try:
                    futures.append(await publisher.send(topic, f"k{k}".encode(), b"%d" % n, []))
                except Exception as exc:
                    outcomes[type(exc).__name__] += 1
            for result in await asyncio.gather(*futures, return_exceptions=True):
                outcomes[
                    "ok" if not isinstance(result, BaseException) else type(result).__name__
                ] += 1
            n += 1
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(keep_sending())
    renewed_before = _renewals()
    try:

        async def sending() -> bool:
            return outcomes["ok"] >= 300

        await eventually(sending, timeout_s=30)
        await asyncio.to_thread(local_infra, "kafka-stop")
        await asyncio.sleep(2)  # sends fail or wait while the broker is away
        await asyncio.to_thread(local_infra, "kafka-start")
        ok_at_start = outcomes["ok"]

        async def sending_again() -> bool:
            return outcomes["ok"] >= ok_at_start + 300

        await eventually(sending_again, timeout_s=60)
    finally:
        stopping.set()
        await sender
        await publisher.stop()
    # Every batch before the restart went through; after it, sends succeed again, whether the
    # restart left the producer out of step (then it was replaced) or not.
    assert outcomes["ok"] >= ok_at_start + 300
    if outcomes["OutOfOrderSequenceNumber"]:
        assert _renewals() > renewed_before
