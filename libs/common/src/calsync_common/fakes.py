"""In-memory stand-ins for the ports, for service tests driven through ``bootstrap`` (STYLE §11).

They keep the promises the real adapters keep and that the shared contract suite checks: per-key
sequences from 1, deterministic event ids, and nothing "published" unless the unit of work
committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.topics import topic_named
from calsync_common.outbox.store import event_id_for
from calsync_common.ports import NO_TRANSACTION, OutboxEntry


@dataclass(frozen=True)
class FakeMessage:
    entry: OutboxEntry
    payload: EventPayload | None  # None: a tombstone
    subject: str | None


@dataclass
class FakeOutbox:
    source: str
    sequences: dict[tuple[str, str], int] = field(default_factory=dict)
    pending: list[FakeMessage] = field(default_factory=list)
    #: An autocommit work's outbox: there is no transaction for it to commit with.
    refuses: bool = False

    async def add(
        self,
        payload: EventPayload,
        *,
        subject: str | None = None,
        event_id: str | None = None,
        topic: str | None = None,
    ) -> OutboxEntry:
        entry = self._entry(topic or payload.topic, payload.partition_key(), event_id)
        self.pending.append(FakeMessage(entry, payload, subject))
        return entry

    async def add_many(
        self, payloads: Sequence[EventPayload], *, new_keys: bool = False
    ) -> list[OutboxEntry]:
        if new_keys and any((p.topic, p.partition_key()) in self.sequences for p in payloads):
            raise ValueError("add_many(new_keys=True) with a key used before")
        return [await self.add(p) for p in payloads]

    async def tombstone(self, topic: str, key: str) -> OutboxEntry:
        known = topic_named(topic)
        if known is not None and known.cleanup != "compact":
            raise ValueError(f"{topic} is not compacted: a tombstone would delete nothing")
        entry = self._entry(topic, key, None)
        self.pending.append(FakeMessage(entry, None, None))
        return entry

    def _entry(self, topic: str, key: str, event_id: str | None) -> OutboxEntry:
        if self.refuses:
            raise RuntimeError(NO_TRANSACTION)
        sequence = self.sequences.get((topic, key), 0) + 1
        self.sequences[(topic, key)] = sequence
        ce_id = event_id or event_id_for(self.source, topic, key, sequence)
        return OutboxEntry(topic=topic, key=key, sequence=sequence, event_id=ce_id)


@dataclass
class FakeWork:
    outbox: FakeOutbox


class FakeUnitOfWork:
    """Commits by moving the outbox's pending messages to ``published``; an error drops them."""

    def __init__(self, source: str = "/calsync/test") -> None:
        self.source = source
        self.published: list[FakeMessage] = []
        self.commits = 0
        self.rollbacks = 0
        self._sequences: dict[tuple[str, str], int] = {}

    def __call__(self) -> AbstractAsyncContextManager[FakeWork]:
        return self._open()

    def autocommit(self) -> AbstractAsyncContextManager[FakeWork]:
        return self._autocommit()

    @asynccontextmanager
    async def _autocommit(self) -> AsyncIterator[FakeWork]:
        yield FakeWork(FakeOutbox(self.source, refuses=True))

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[FakeWork]:
        outbox = FakeOutbox(self.source, dict(self._sequences))
        try:
            yield FakeWork(outbox)
        except BaseException:
            self.rollbacks += 1
            raise
        self._sequences = outbox.sequences
        self.published.extend(outbox.pending)
        self.commits += 1
