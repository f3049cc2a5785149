"""A delta round the database fails (emulator, real Kafka and PostgreSQL).

The round read Graph, then recording it failed (a cut session, a restart): the runner gives the
calendar's lease up at once, so the calendar is read again after the round backoff (10 s), not
when the 120 s lease runs out; nothing is published until a round is recorded. A round the
database refuses (its data or our SQL is wrong, not the server's state) is reported: the
calendar is stale with the error, retried after the backoff, and the runner goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from calsync_common.runtime import FATAL
from calsync_common.testing import eventually
from calsync_sync_worker.adapters.repository import SyncRepository

from .conftest import Emulator, SignedIn
from .test_convergence import sync_status, timed
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


async def test_a_round_the_database_refuses_reports_the_calendar_stale_and_is_retried(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish = SyncRepository.finish_round
    refused = 0

    async def refuse_once(self: SyncRepository, *args: Any, **kwargs: Any) -> Any:
        nonlocal refused
        if refused == 0 and kwargs.get("error") is None:  # the round's record, not its failure
            refused += 1
            await self._db.execute("SELECT 1 / 0")  # a real refusal, raised by the server
        return await finish(self, *args, **kwargs)

    monkeypatch.setattr(SyncRepository, "finish_round", refuse_once)
    linked = await default_calendar(rig)
    start = (datetime.now(UTC) + timedelta(days=4)).replace(minute=0, second=0, microsecond=0)
    created = await rig.control(
        "POST",
        f"/_emulator/users/{rig.user.user_id}/calendars/{linked}/events",
        timed("Review", start, start + timedelta(hours=1), "busy", "UTC"),
    )
    await rig.snapshot(3, (linked,))
    await round_now(rig, linked)

    async def reported_stale() -> bool:
        return any(s["status"] == "stale" for s in await sync_status(rig, linked))

    await eventually(reported_stale, timeout_s=30)
    stale = next(s for s in await sync_status(rig, linked) if s["status"] == "stale")
    assert stale["last_error"] == "DivisionByZeroError: 22012"

    async def published() -> bool:
        return any(e.get("event_id") == created["id"] for e in await calendar_events(rig, linked))

    await eventually(published, timeout_s=30)  # the next round, after the backoff
    assert (await sync_status(rig, linked))[-1]["status"] == "healthy"
    assert refused == 1
    assert rig.app[FATAL] == []  # the runner went on
