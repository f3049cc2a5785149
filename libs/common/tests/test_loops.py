"""Round loops against a real PostgreSQL: the server's state is retried, a refused statement
is a bug that ends the loop (the runtime then declares the process unhealthy)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from calsync_common.loops import RoundLoop

pytestmark = pytest.mark.integration


class Rounds(RoundLoop):
    def __init__(self, pool: asyncpg.Pool, statements: list[str]) -> None:
        super().__init__("test rounds", every_s=0.01, batch=10)
        self.pool = pool
        self.statements = statements
        self.done = 0

    async def round(self) -> int:
        statement = self.statements[min(self.done, len(self.statements) - 1)]
        self.done += 1
        if self.done == len(self.statements):
            self.request_stop()
        await self.pool.execute(statement)
        return 0


async def test_a_round_the_server_cannot_serve_now_is_retried(pool: asyncpg.Pool) -> None:
    # A statement timeout is the server's state (57014, QueryCanceled): retried, not fatal.
    loop = Rounds(pool, ["SET statement_timeout = 1; SELECT pg_sleep(1)", "SELECT 1"])
    async with asyncio.timeout(10):
        await loop.run()
    assert loop.done == 2


async def test_a_round_the_database_refuses_ends_the_loop(pool: asyncpg.Pool) -> None:
    loop = Rounds(pool, ["SELECT no_such_column FROM applied", "SELECT 1"])
    async with asyncio.timeout(10):
        with pytest.raises(asyncpg.UndefinedColumnError):
            await loop.run()
    assert loop.done == 1
