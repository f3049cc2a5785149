"""A service process that dies by SIGKILL at the worst moment for its outbox.

Run by ``test_outbox.py``: ``python outbox_process.py MODE BOOTSTRAP DSN TOPIC UNIQUE``.

* ``commit-then-die``: commits five state changes with their events, then dies before any relay;
* ``relay-then-die``: commits five, relays them, and dies after the broker's ack, before deleting.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from uuid import UUID

import asyncpg

from calsync_common.contracts.bookings import BookingConfirmed
from calsync_common.contracts.examples import examples
from calsync_common.kafka.producer import EventPublisher
from calsync_common.outbox.relay import OutboxRelay, RelayConfig
from calsync_common.postgres.uow import unit_of_work

BOOKING = next(e for e in examples() if isinstance(e, BookingConfirmed))


async def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # no finally, no delete, no goodbye


async def main(mode: str, bootstrap: str, dsn: str, topic: str, unique: str) -> None:
    key = BOOKING.booking_id.int + (1 if mode == "commit-then-die" else 2)
    async with asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
        uow = unit_of_work(pool, "/calsync/test")
        for n in range(1, 6):
            async with uow() as work:
                payload = BOOKING.model_copy(update={"booking_id": UUID(int=key), "version": n})
                await work.outbox.add(payload, topic=topic)
        if mode == "commit-then-die":
            await die()
        publisher = EventPublisher(bootstrap, client_id="dying", source="/calsync/test")
        await publisher.start()
        relay = OutboxRelay(
            dsn, pool, publisher, service=f"test-{unique}", config=RelayConfig(), after_publish=die
        )
        await relay.claim_buckets()
        await relay.relay_once()
        raise SystemExit("the relay should have killed this process")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
