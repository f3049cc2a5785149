"""asyncpg pool opened and closed by the app's lifecycle, and a transaction that never hands a
broken connection back to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg
from asyncpg.pool import PoolConnectionProxy

#: Errors after which a connection's protocol state cannot be trusted. asyncpg may raise
#: InternalClientError ("cannot switch to state ...") on a session terminated mid-operation
#: (MagicStack/asyncpg#1069); such a connection must be discarded, not reused.
BROKEN_CONNECTION = (asyncpg.InternalClientError, asyncpg.InterfaceError)


@asynccontextmanager
async def open_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    server_settings: Mapping[str, str] | None = None,
) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        reset=_keep_session,
        server_settings=dict(server_settings or {}),
    )
    try:
        yield pool
    finally:
        await pool.close()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset statement (``pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL``: a round trip on every release, about 5 % of a busy query's CPU).
    Pooled connections keep no session state: transactions are managed (asyncpg still rolls back
    one left open before this runs), advisory locks are transaction-scoped, and the one session
    that holds locks and LISTENs, the outbox relay's, is its own connection outside the pool.
    ``test_postgres_pool`` holds the rule: a session-scoped change on a pooled connection fails it.
    """


async def ping(pool: asyncpg.Pool) -> None:
    """Readiness: a round trip to the database."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
    """One connection, one transaction; a connection that broke inside is terminated."""
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                yield conn
        except BROKEN_CONNECTION:
            conn.terminate()
            raise
