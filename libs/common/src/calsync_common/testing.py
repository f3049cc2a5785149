"""Helpers for tests that drive the plumbing on real infrastructure (the services' tests too).

``eventually`` polls a condition with a deadline (readiness by polling, never by sleeping);
``running`` runs a consumer runner for the duration of a block and stops it as the runtime does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from calsync_common.kafka.consumer import ConsumerRunner
from calsync_common.postgres import Connection


async def eventually(condition: Callable[[], Awaitable[bool]], timeout_s: float = 60) -> None:
    """Wait until ``condition()`` holds; TimeoutError after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        # Polls a database or a broker (no event to wait on), bounded by the timeout.
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def connection(conn: Connection) -> Connection:
    """A ``bind`` for runners whose handlers take the raw connection (plumbing tests only)."""
    return conn


@contextlib.asynccontextmanager
async def running(runner: ConsumerRunner[Any]) -> AsyncIterator[asyncio.Task[None]]:
    """Start the runner's loop; on exit ask it to stop, wait for the batch in flight, close."""
    await runner.start()
    task = asyncio.create_task(runner.run())
    try:
        yield task
    finally:
        runner.request_stop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(15):
                await task
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runner.close()
