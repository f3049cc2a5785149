"""asyncpg pool opened and closed by the app's lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg


@asynccontextmanager
async def open_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10
) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()


async def ping(pool: asyncpg.Pool) -> None:
    """Readiness: a round trip to the database."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
