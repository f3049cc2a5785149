"""A delta round the database fails (emulator, real Kafka and PostgreSQL).

The round read Graph, then recording it failed (a cut session, a restart): the runner gives the
calendar's lease up at once, so the calendar is read again after the round backoff (10 s), not
when the 120 s lease runs out; nothing is published until a round is recorded. A round the
database refuses (its data or our SQL is wrong, not the server's state) is reported: the
calendar is stale with the error, retried after the backoff, and the runner goes on.
"""

from __future__ import annotations

from typing import Any

import pytest

from calsync_common.runtime import FATAL
from calsync_common.testing import eventually
from calsync_sync_worker.adapters.repository import SyncRepository

from .test_convergence import sync_status
from .test_subscriptions import Rig
from .test_write_back import create_busy_event, default_calendar, round_now, until_published

pytestmark = pytest.mark.integration


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
    created = await create_busy_event(rig, linked, 3, "Planning")
    await rig.snapshot(3, (linked,))  # its first round (the full read) is the one cut
    await round_now(rig, linked)
    await until_published(rig, linked, created, 30)  # well inside the 120 s lease
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
    created = await create_busy_event(rig, linked, 4, "Review")
    await rig.snapshot(3, (linked,))
    await round_now(rig, linked)

    async def reported_stale() -> bool:
        return any(s["status"] == "stale" for s in await sync_status(rig, linked))

    await eventually(reported_stale, timeout_s=30)
    stale = next(s for s in await sync_status(rig, linked) if s["status"] == "stale")
    assert stale["last_error"] == "DivisionByZeroError: 22012"

    await until_published(rig, linked, created, 30)  # the next round, after the backoff
    assert (await sync_status(rig, linked))[-1]["status"] == "healthy"
    assert refused == 1
    assert rig.app[FATAL] == []  # the runner went on
