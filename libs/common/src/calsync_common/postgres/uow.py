"""Unit of work on PostgreSQL: one connection, one transaction, an outbox on the same connection.

``PostgresUnitOfWork(pool, source)`` is the production :class:`calsync_common.ports.UnitOfWork`;
``async with uow() as work:`` commits on success and rolls back on error. Services subclass
:class:`PostgresWork` to add their repositories (SQL adapters built on ``work.connection``) and
pass the subclass as ``work_type``; the consumer runner binds the same type to the connection of
its batch transaction, so a handler is written once for HTTP and Kafka.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Generic, TypeVar

import asyncpg

from calsync_common.outbox.store import PostgresOutbox
from calsync_common.ports import NO_TRANSACTION
from calsync_common.postgres import Connection
from calsync_common.postgres.pool import transaction


class PostgresWork:
    """An open transaction: ``connection`` for the service's SQL adapters, and its outbox."""

    def __init__(self, connection: Connection, source: str) -> None:
        self.connection = connection
        self._outbox = PostgresOutbox(connection, source)
        #: Set on the work of :meth:`PostgresUnitOfWork.autocommit`: no transaction to join.
        self.autocommit = False

    @property
    def outbox(self) -> PostgresOutbox:
        if self.autocommit:
            raise RuntimeError(NO_TRANSACTION)
        return self._outbox


W = TypeVar("W", bound=PostgresWork)


class PostgresUnitOfWork(Generic[W]):
    def __init__(
        self,
        pool: asyncpg.Pool,
        source: str,
        work_type: Callable[[Connection, str], W],
    ) -> None:
        self._pool = pool
        self._source = source
        self._work_type = work_type

    def bind(self, connection: Connection) -> W:
        """The work of a transaction someone else opened (the consumer runner's batch)."""
        return self._work_type(connection, self._source)

    def __call__(self) -> AbstractAsyncContextManager[W]:
        return self._open()

    def connection(self) -> AbstractAsyncContextManager[Connection]:
        """A pooled connection outside any transaction, each statement committing on its own:
        for reads, and a write that is one statement (never the outbox's, which must commit
        with the change it reports: that is :meth:`__call__`'s work)."""
        return self._pool.acquire()

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[W]:
        """The work on a pooled connection outside any transaction, each statement committing
        on its own: for a write that is one statement, such as a lease claim (one round trip
        instead of three: BEGIN, the statement, COMMIT). Its outbox refuses to be used."""
        async with self.connection() as conn:
            work = self.bind(conn)
            work.autocommit = True
            yield work

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[W]:
        async with transaction(self._pool) as conn:
            yield self._work_type(conn, self._source)


def unit_of_work(pool: asyncpg.Pool, source: str) -> PostgresUnitOfWork[PostgresWork]:
    """A unit of work with the outbox only (services add repositories by subclassing)."""
    return PostgresUnitOfWork(pool, source, PostgresWork)
