"""Which errors mean "a dependency is unavailable right now" (retry later, lose nothing) rather
than "this input or this code is wrong". Shared by the consumer runner and the outbox relay."""

from __future__ import annotations

import asyncpg
from aiokafka.errors import KafkaError


class RetryLater(Exception):
    """Raised by a handler when a dependency is down: the batch is re-read later, not dropped."""


#: From a handler: abort the batch and re-read it after a backoff; never dead-lettered.
TRANSIENT: tuple[type[BaseException], ...] = (
    RetryLater,
    OSError,  # includes ConnectionError
    TimeoutError,
    KafkaError,
    asyncpg.InterfaceError,  # e.g. the connection was closed under the query
    asyncpg.InternalClientError,  # a session terminated mid-operation (asyncpg#1069)
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError, ConnectionFailureError, ...
    asyncpg.OperatorInterventionError,  # AdminShutdown, CrashShutdown, QueryCanceled, ...
    asyncpg.InsufficientResourcesError,  # TooManyConnections, DiskFull, OutOfMemory
    asyncpg.TransactionRollbackError,  # serialization failure, deadlock
)

#: From the plumbing's own SQL and Kafka calls: any database error is the infrastructure's
#: (a missing table during a migration, a restart); retried with backoff, never fatal.
INFRASTRUCTURE: tuple[type[BaseException], ...] = (*TRANSIENT, asyncpg.PostgresError)
