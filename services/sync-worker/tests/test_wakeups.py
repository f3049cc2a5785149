"""Who wakes whom (emulator, real Kafka and PostgreSQL): work made due by one loop is started by
the next at once, not on its poll. The polls here are a minute long, so only wake-ups can make
the test pass in time."""

from __future__ import annotations

from typing import Any

import pytest

from calsync_common.runtime import POOL, PUBLISHER
from calsync_common.testing import eventually

from .conftest import Emulator, SignedIn
from .test_subscriptions import BASE, running_rig
from .test_write_back import calendar_events, default_calendar

pytestmark = pytest.mark.integration


async def test_a_new_calendar_is_subscribed_and_read_without_waiting_for_a_poll(
    infra: Any,
    fresh_database: str,
    graph_emulator: Emulator,
    signed_in: SignedIn,
    topic_prefix: str,
) -> None:
    """A snapshot from Kafka applied wakes the subscription upkeep (it subscribes) and the
    delta runner (it reads the calendar; a created subscription wakes it again): in either
    order, neither waits for its poll."""
    async with running_rig(
        infra,
        fresh_database,
        graph_emulator,
        signed_in,
        topic_prefix,
        subscriptions_every_s=60.0,
        delta_every_s=60.0,
    ) as rig:
        linked = await default_calendar(rig)
        snapshot = BASE.model_copy(
            update={
                "connection_id": rig.connection_id,
                "sub_account_id": rig.sub_account_id,
                "version": 1,
                "linked_calendar_id": linked,
                "conflict_calendar_ids": (linked,),
            }
        )
        await rig.app[PUBLISHER].publish(snapshot)  # through the service's own consumer

        async def read() -> bool:
            published = await calendar_events(rig, linked)
            return any(e["type"].endswith("resync_completed.v1") for e in published)

        async def subscribed() -> bool:
            count = await rig.app[POOL].fetchval(
                "SELECT count(*) FROM subscriptions WHERE calendar_id = $1", linked
            )
            return bool(count == 1)

        # Both within 40 s of the start, before either loop's first poll after it (60 s).
        await eventually(read, timeout_s=20)
        await eventually(subscribed, timeout_s=20)
