"""A delta round the database fails (emulator, real Kafka and PostgreSQL).

The round read Graph, then recording it failed (a cut session, a restart): the runner gives the
calendar's lease up at once, so the calendar is read again after the round backoff (10 s), not
when the 120 s lease runs out; nothing is published until a round is recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from calsync_common.testing import eventually
from calsync_sync_worker.adapters.repository import SyncRepository

from .conftest import Emulator, SignedIn
from .test_convergence import timed
from .test_subscriptions import Rig, running_rig
from .test_write_back import calendar_events, default_calendar, round_now

pytestmark = pytest.mark.integration


@pytest.fixture
async def rig(
    infra: Any,
    fresh_database: str,
    graph_emulator: Emulator,
    signed_in: SignedIn,
    topic_prefix: str,
) -> AsyncIterator[Rig]:
    async with running_rig(
        infra, fresh_database, graph_emulator, signed_in, topic_prefix, delta_every_s=0.2
    ) as r:
        yield r


async def test_a_round_whose_record_fails_gives_its_lease_up_and_is_read_again(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish = SyncRepository.finish_round
    cut = 0

    async def cut_once(self: SyncRepository, *args: Any, **kwargs: Any) -> Any:
        nonlocal cut
        if cut == 0:
            cut += 1
            raise ConnectionResetError("session terminated")
        return await finish(self, *args, **kwargs)

    monkeypatch.setattr(SyncRepository, "finish_round", cut_once)
    linked = await default_calendar(rig)
    start = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    created = await rig.control(
        "POST",
        f"/_emulator/users/{rig.user.user_id}/calendars/{linked}/events",
        timed("Planning", start, start + timedelta(hours=1), "busy", "UTC"),
    )
    await rig.snapshot(3, (linked,))  # its first round (the full read) is the one cut
    await round_now(rig, linked)

    async def published() -> bool:
        return any(e.get("event_id") == created["id"] for e in await calendar_events(rig, linked))

    await eventually(published, timeout_s=30)  # well inside the 120 s lease
    assert cut == 1
