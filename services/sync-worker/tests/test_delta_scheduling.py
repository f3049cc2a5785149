"""How the delta runner schedules rounds (no I/O: claims and rounds are stand-ins).

Up to ``DeltaConfig.batch`` rounds run at once, and a finished round's place is claimed again at
once: a slow mailbox's round never holds up the rounds of others. A round's bug still ends the
loop; stopping lets the running rounds finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from calsync_common.testing import eventually
from calsync_sync_worker.adapters import repository
from calsync_sync_worker.adapters.repository import RoundWork
from calsync_sync_worker.service_layer.delta import DeltaConfig, DeltaRunner


@dataclass
class Claims:
    """Calendars due, in order; each claim takes up to ``limit`` of them."""

    due: list[str] = field(default_factory=list)
    limits: list[int] = field(default_factory=list)

    async def claim_rounds(
        self, owner: str, lease_s: float, limit: int
    ) -> repository.Claims[RoundWork]:
        self.limits.append(limit)
        taken, self.due = self.due[:limit], self.due[limit:]
        work = [RoundWork(uuid.uuid4(), c, None, None, None, "UTC", 0) for c in taken]
        return repository.Claims(work, left_due=bool(self.due))


@dataclass
class Work:
    sync: Claims


class ScriptedRunner(DeltaRunner):
    """A runner whose rounds wait for the test's word (``release``) and record their order."""

    def __init__(self, claims: Claims, batch: int) -> None:
        class ScriptedUnitOfWork:
            """Claims only, with or without a transaction (a claim is one statement)."""

            @contextlib.asynccontextmanager
            async def autocommit(self) -> AsyncIterator[Work]:
                yield Work(claims)

            def __call__(self) -> contextlib.AbstractAsyncContextManager[Work]:
                return self.autocommit()

        super().__init__(
            ScriptedUnitOfWork(),  # type: ignore[arg-type]
            graph=None,  # type: ignore[arg-type]
            clock=lambda: datetime.now(UTC),
            owner="test",
            config=DeltaConfig(batch=batch, every_s=30.0),
        )
        self.gates: dict[str, asyncio.Event] = {}
        self.started: list[str] = []
        self.done: list[str] = []
        self.fail: dict[str, BaseException] = {}
        self.again: set[str] = set()  # rounds that finish with their calendar due again

    def release(self, calendar_id: str) -> None:
        self.gates.setdefault(calendar_id, asyncio.Event()).set()

    async def sync(self, w: RoundWork) -> None:
        self.started.append(w.calendar_id)
        await self.gates.setdefault(w.calendar_id, asyncio.Event()).wait()
        if w.calendar_id in self.fail:
            raise self.fail[w.calendar_id]
        self.done.append(w.calendar_id)
        if w.calendar_id in self.again:
            self._due_again = True  # as _commit records it from finish_round


async def until(condition: Any, timeout_s: float = 5.0) -> None:
    async def holds() -> bool:
        return bool(condition())

    await eventually(holds, timeout_s)


async def test_a_slow_round_does_not_hold_up_the_next_claims() -> None:
    claims = Claims(due=["slow", "a", "b", "c", "d"])
    runner = ScriptedRunner(claims, batch=2)
    task = asyncio.create_task(runner.run())
    try:
        await until(lambda: runner.started == ["slow", "a"])
        for calendar in ("a", "b", "c"):  # each finished round's place is claimed again at once
            runner.release(calendar)
        await until(lambda: runner.done == ["a", "b", "c"])
        assert runner.started == ["slow", "a", "b", "c", "d"]
        assert "slow" not in runner.done  # still running all along
        assert max(claims.limits) == 2 and claims.limits[-1] == 1  # never more than the batch
        runner.release("d")
        runner.release("slow")
        await until(lambda: sorted(runner.done) == ["a", "b", "c", "d", "slow"])
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 5)


async def test_a_finished_round_claims_again_only_when_work_may_be_due() -> None:
    """A claim that left places free found everything due; a round finishing then claims
    nothing new (no empty claim per round), unless its calendar is due again."""
    claims = Claims(due=["quiet", "again"])
    runner = ScriptedRunner(claims, batch=4)
    runner.again.add("again")
    task = asyncio.create_task(runner.run())
    try:
        await until(lambda: runner.started == ["quiet", "again"])
        runner.release("quiet")
        await until(lambda: runner.done == ["quiet"])
        await asyncio.sleep(0.1)
        assert claims.limits == [4]  # the loop waits for a wake or its every_s (30 s)
        claims.due.append("again")  # what finish_round made due again
        runner.gates["again"].set()
        runner.gates.pop("again")  # its next round waits for the test again
        await until(lambda: runner.started == ["quiet", "again", "again"])
        assert claims.limits == [4, 4]
    finally:
        runner.release("again")
        runner.request_stop()
        await asyncio.wait_for(task, 5)


async def test_stopping_lets_the_running_rounds_finish() -> None:
    runner = ScriptedRunner(Claims(due=["x"]), batch=4)
    task = asyncio.create_task(runner.run())
    await until(lambda: runner.started == ["x"])
    runner.request_stop()
    await asyncio.sleep(0.05)
    assert not task.done()  # waits for x's round (its lease would otherwise hold the calendar)
    runner.release("x")
    await asyncio.wait_for(task, 5)
    assert runner.done == ["x"]


async def test_a_round_that_meets_an_outage_is_logged_and_the_loop_goes_on() -> None:
    runner = ScriptedRunner(Claims(due=["down", "next"]), batch=1)
    runner.fail["down"] = ConnectionRefusedError("database away")
    runner.release("down")
    runner.release("next")
    task = asyncio.create_task(runner.run())
    try:
        await until(lambda: runner.done == ["next"])
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 5)


async def test_a_round_that_hits_a_bug_ends_the_loop() -> None:
    runner = ScriptedRunner(Claims(due=["bug", "next"]), batch=1)
    runner.fail["bug"] = KeyError("a bug")
    runner.release("bug")
    task = asyncio.create_task(runner.run())
    with pytest.raises(KeyError):
        await asyncio.wait_for(task, 5)
    assert runner.done == []
