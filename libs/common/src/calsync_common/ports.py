"""The seams the service layer depends on: an outbox and a unit of work, no driver types.

Service-layer handlers take a :class:`Work` (the open unit of work: its repositories and its
outbox) and never an asyncpg connection or a Kafka producer. ``bootstrap()`` decides what stands
behind them: PostgreSQL and the relay in production (``calsync_common.postgres.uow``), the fakes of
``calsync_common.fakes`` in tests. Both pass one contract suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from calsync_common.contracts.base import EventPayload


@dataclass(frozen=True)
class OutboxEntry:
    """What an outbox recorded: the event's deterministic id and its per-key sequence."""

    topic: str
    key: str
    sequence: int
    event_id: str


class Outbox(Protocol):
    """Events leave a service only through here, in the transaction of the state change."""

    async def add(
        self,
        payload: EventPayload,
        *,
        subject: str | None = None,
        event_id: str | None = None,
        topic: str | None = None,
    ) -> OutboxEntry:
        """Queue ``payload`` on its catalogue topic (or ``topic``: tests, replays); published
        after the unit of work commits."""
        ...

    async def add_many(
        self, payloads: Sequence[EventPayload], *, new_keys: bool = False
    ) -> list[OutboxEntry]:
        """``add`` each payload on its catalogue topic, in order, in as few round trips as the
        store can (a delta round queues thousands). ``new_keys``: the caller vouches that no
        key has been used before (fresh ids), so their sequences start at 1 without reading
        any; a key that was used makes the call fail (never a sequence used twice)."""
        ...

    async def tombstone(self, topic: str, key: str) -> OutboxEntry:
        """Queue a deletion of ``key`` on a compacted topic."""
        ...


class Work(Protocol):
    """An open unit of work: everything done through it commits together or not at all."""

    @property
    def outbox(self) -> Outbox: ...


W_co = TypeVar("W_co", bound=Work, covariant=True)
#: What an autocommit work's outbox says when used.
NO_TRANSACTION = "the outbox needs a transaction: use the unit of work, not autocommit"


class UnitOfWork(Protocol[W_co]):
    """``async with uow() as work:`` commits on success and rolls back on error."""

    def __call__(self) -> AbstractAsyncContextManager[W_co]: ...

    def autocommit(self) -> AbstractAsyncContextManager[W_co]:
        """The work outside any transaction, each statement committing on its own: for a write
        that is one statement (a lease claim). Its outbox refuses to be used."""
        ...
