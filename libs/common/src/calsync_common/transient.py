"""Which errors mean "a dependency is unavailable right now" (retry later, lose nothing) rather
than "this input or this code is wrong". Shared by the consumer runner, the outbox relay and
the services' loops.

Only errors of the server's *state* are transient: a connection lost, a restart, a failover (a
standby is read-only), a lock or statement timeout, a serialisation failure. Any other database
error (a syntax error, a missing column, a constraint the code should have kept) is a bug: it
is not retried for ever behind a warning, it reaches the caller (a consumer dead-letters the
record; a loop ends and the process reports itself unhealthy).
"""

from __future__ import annotations

import asyncpg
from aiokafka.errors import KafkaError


class RetryLater(Exception):
    """Raised by a handler when a dependency is down: the batch is re-read later, not dropped."""


#: Abort the work in hand and retry it after a backoff; never dead-lettered.
TRANSIENT: tuple[type[BaseException], ...] = (
    RetryLater,
    OSError,  # includes ConnectionError
    TimeoutError,
    KafkaError,
    asyncpg.InterfaceError,  # e.g. the connection was closed under the query
    asyncpg.InternalClientError,  # a session terminated mid-operation (asyncpg#1069)
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError, ConnectionFailureError, ...
    asyncpg.OperatorInterventionError,  # AdminShutdown, CannotConnectNow, QueryCanceled, ...
    asyncpg.InsufficientResourcesError,  # TooManyConnections, DiskFull, OutOfMemory
    asyncpg.TransactionRollbackError,  # serialization failure, deadlock
    asyncpg.ReadOnlySQLTransactionError,  # a failover: the server we reached is a standby
    asyncpg.LockNotAvailableError,  # lock_timeout
    asyncpg.IdleInTransactionSessionTimeoutError,
)

#: A database error that is not in :data:`TRANSIENT`: the statement or its data is wrong (a bug,
#: or input the code let through). Caught (after ``TRANSIENT``) only where one item's failure
#: must not stop the others: that item is reported failed and retried with a growing backoff.
REFUSED_BY_DATABASE: tuple[type[BaseException], ...] = (asyncpg.PostgresError,)
