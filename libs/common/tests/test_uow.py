"""Unit of work against real PostgreSQL: all of it commits, or none of it does, outbox included."""

from __future__ import annotations

import asyncpg
import pytest

from calsync_common.contracts.bookings import BookingConfirmed
from calsync_common.contracts.examples import examples
from calsync_common.postgres.uow import PostgresUnitOfWork, PostgresWork

pytestmark = pytest.mark.integration
BOOKING = next(e for e in examples() if isinstance(e, BookingConfirmed))


class SlotWork(PostgresWork):
    """What a service does: a repository on the work's connection, beside the outbox."""

    async def take(self, n: int) -> None:
        await self.connection.execute("INSERT INTO slots VALUES ($1)", n)


async def test_commits_on_success_and_rolls_back_on_error(pool: asyncpg.Pool) -> None:
    await pool.execute("CREATE TABLE slots (n int PRIMARY KEY)")
    uow = PostgresUnitOfWork(pool, "/calsync/test", SlotWork)
    async with uow() as work:
        await work.take(1)
        await work.take(2)
        await work.outbox.add(BOOKING)

    async def take_3_then_duplicate_1() -> None:
        async with uow() as work:
            await work.take(3)
            await work.outbox.add(BOOKING)
            await work.take(1)

    with pytest.raises(asyncpg.UniqueViolationError):
        await take_3_then_duplicate_1()
    assert [r["n"] for r in await pool.fetch("SELECT n FROM slots ORDER BY n")] == [1, 2]
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
    # Every connection went back to the pool, outside any transaction.
    assert pool.get_size() - pool.get_idle_size() == 0


async def test_a_connection_terminated_inside_is_discarded_not_reused(pool: asyncpg.Pool) -> None:
    uow = PostgresUnitOfWork(pool, "/calsync/test", SlotWork)

    async def killed_mid_transaction() -> None:
        async with uow() as work:
            pid = await work.connection.fetchval("SELECT pg_backend_pid()")
            await pool.execute("SELECT pg_terminate_backend($1)", pid)
            await work.connection.fetchval("SELECT 1")

    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
        await killed_mid_transaction()
    async with uow() as work:  # the next unit of work gets a working connection
        assert await work.connection.fetchval("SELECT 1") == 1


async def test_autocommit_commits_each_statement_alone_and_refuses_the_outbox(
    pool: asyncpg.Pool,
) -> None:
    """For one-statement writes (lease claims): no transaction around them, so each statement
    is committed when it returns, and a failing one takes nothing else with it; the outbox,
    which must commit with the change it reports, cannot be used there."""
    await pool.execute("CREATE TABLE slots (n int PRIMARY KEY)")
    uow = PostgresUnitOfWork(pool, "/calsync/test", SlotWork)
    seen_outside: list[int] = []

    async def take_1_twice() -> None:
        async with uow.autocommit() as work:
            assert not work.connection.is_in_transaction()
            await work.take(1)
            # Committed already: another connection sees it before this work ends.
            seen_outside.append(await pool.fetchval("SELECT count(*) FROM slots"))
            await work.take(1)

    with pytest.raises(asyncpg.UniqueViolationError):
        await take_1_twice()
    assert seen_outside == [1]
    assert [r["n"] for r in await pool.fetch("SELECT n FROM slots")] == [1]
    async with uow.autocommit() as work:
        with pytest.raises(RuntimeError, match="needs a transaction"):
            await work.outbox.add(BOOKING)
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    async with uow() as work:  # the transactional work of the same unit keeps its outbox
        await work.outbox.add(BOOKING)
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
