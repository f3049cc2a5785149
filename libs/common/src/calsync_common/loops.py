"""A background job that works in rounds: the shape of the services' schedulers and sweepers.

``run()`` calls ``round()`` until stopped: at once again when a round was full (``batch`` items
handled), else after ``every_s`` or as soon as someone calls ``wake()``. A transient error
(a database or broker away) is logged and retried on the next round; anything else is a bug and
ends the loop (the runtime then declares the process unhealthy).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from calsync_common.transient import TRANSIENT

log = logging.getLogger(__name__)

#: How soon a claimer looks again at work it saw due but could not lock (another transaction
#: held it for a moment: another replica leasing it, or another loop updating the same row).
HELD_ELSEWHERE_S = 0.1


class RoundLoop:
    def __init__(self, name: str, *, every_s: float, batch: int) -> None:
        self.name = name
        self.every_s = every_s
        self.batch = batch
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._soon: float | None = None

    def wake(self) -> None:
        self._wake.set()

    def look_again_in(self, seconds: float) -> None:
        """After this round, wait at most ``seconds`` (not ``every_s``) for the next: work seen
        due but held by another transaction for a moment."""
        self._soon = seconds if self._soon is None else min(self._soon, seconds)

    def request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def round(self) -> int:
        """Do one round of work; the number of items handled."""
        raise NotImplementedError

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = await self.round()
            except TRANSIENT as exc:
                log.warning(f"{self.name} round failed", extra={"error": type(exc).__name__})
                handled = 0
            if handled < self.batch:
                wait_s = self.every_s if self._soon is None else min(self.every_s, self._soon)
                self._soon = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait_s)
                self._wake.clear()
