"""Unit of work against real PostgreSQL: all of it commits, or none of it does."""

from __future__ import annotations

import asyncpg
import pytest

from calsync_common.postgres.uow import UnitOfWork

pytestmark = pytest.mark.integration


async def test_commits_on_success_and_rolls_back_on_error(fresh_database: str) -> None:
    async with asyncpg.create_pool(fresh_database, min_size=1, max_size=2) as pool:
        await pool.execute("CREATE TABLE slots (n int PRIMARY KEY)")
        async with UnitOfWork(pool) as conn:
            await conn.execute("INSERT INTO slots VALUES (1), (2)")

        async def insert_3_then_duplicate_1() -> None:
            async with UnitOfWork(pool) as conn:
                await conn.execute("INSERT INTO slots VALUES (3)")
                await conn.execute("INSERT INTO slots VALUES (1)")

        with pytest.raises(asyncpg.UniqueViolationError):
            await insert_3_then_duplicate_1()
        assert [r["n"] for r in await pool.fetch("SELECT n FROM slots ORDER BY n")] == [1, 2]
        # Every connection went back to the pool, outside any transaction.
        assert pool.get_size() - pool.get_idle_size() == 0
