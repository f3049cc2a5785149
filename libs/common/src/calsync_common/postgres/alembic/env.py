"""Shared Alembic environment: async engine on asyncpg, per-service version table, advisory lock."""

from __future__ import annotations

import asyncio
import zlib

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config
URL: str = config.attributes["url"]
VERSION_TABLE: str = config.attributes["version_table"]
LOCK_ID = zlib.crc32(VERSION_TABLE.encode())


def _run(connection: Connection) -> None:
    # One transaction for the whole upgrade: all pending revisions apply, or none does.
    context.configure(connection=connection, version_table=VERSION_TABLE)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
        context.run_migrations()


async def _main() -> None:
    engine = create_async_engine(URL, poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
asyncio.run(_main())
