"""Periodic clean-up: expired sign-ins go, and disconnected connections are erased.

A sign-in that was never completed keeps a sealed PKCE verifier: it is deleted once expired. A
connection disconnected longer than ``erase_after`` is deleted, and a tombstone on the compacted
connections topic erases it from Kafka as well (its snapshot said ``disconnected`` first, so the
sync-worker and the availability service have already let go of it). Every replica may run this:
each row is deleted, and tombstoned, exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from calsync_common.contracts.topics import CONNECTIONS
from calsync_common.loops import RoundLoop
from calsync_connector.service_layer.unit_of_work import ConnectorUnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JanitorConfig:
    every: timedelta = timedelta(minutes=5)
    erase_after: timedelta = timedelta(days=7)
    batch: int = 100


class Janitor(RoundLoop):
    def __init__(
        self, uow: ConnectorUnitOfWork, config: JanitorConfig, clock: Callable[[], datetime]
    ) -> None:
        # A sweep finishes its own batches: the loop only waits between sweeps.
        super().__init__("clean-up", every_s=config.every.total_seconds(), batch=1)
        self._uow = uow
        self._config = config
        self._clock = clock

    async def round(self) -> int:
        await self.sweep()
        return 0

    async def sweep(self) -> tuple[int, int]:
        """(expired sign-ins deleted, connections erased) in this round."""
        now = self._clock()
        async with self._uow() as work:
            flows = await work.connections.purge_flows(now)
        erased = 0
        while True:
            async with self._uow() as work:
                ids = await work.connections.erase_disconnected(
                    now - self._config.erase_after, self._config.batch
                )
                for connection_id in ids:
                    await work.outbox.tombstone(CONNECTIONS.name, str(connection_id))
            erased += len(ids)
            if len(ids) < self._config.batch:
                return flows, erased
