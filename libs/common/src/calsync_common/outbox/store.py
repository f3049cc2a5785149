"""The PostgreSQL outbox: rows written in the caller's transaction, one sequence per key.

Each ``add`` takes the next sequence of ``(topic, key)`` from ``outbox_sequences`` (the row lock
serialises writers of one key, so sequence order is commit order) and derives the CloudEvents id
from source, topic, key and sequence. The message is encoded once, here, with the trace context
of the state change, and stored as bytes: every relay of it is byte-identical.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from calsync_common.contracts.base import EventPayload
from calsync_common.contracts.envelope import encode, tombstone_headers
from calsync_common.contracts.topics import topic_named
from calsync_common.kafka.tracing import inject
from calsync_common.ports import OutboxEntry
from calsync_common.postgres import Connection

#: Keys are spread over this many buckets; a relay owns whole buckets, so one key is only ever
#: relayed by one replica. A constant, not a setting: replicas must agree on it.
BUCKETS = 16
#: Each insert statement also wakes the relay (``pg_notify``, delivered at commit), the first
#: time in a transaction: a data-modifying WITH runs once whether or not the SELECT after it
#: reads it, so the NOTIFY costs no round trip of its own.
NOTIFY_CHANNEL = "calsync_outbox"


def bucket_of(key: str) -> int:
    return zlib.crc32(key.encode()) % BUCKETS


def event_id_for(source: str, topic: str, key: str, sequence: int) -> str:
    return str(uuid5(NAMESPACE_URL, f"calsync:{source}:{topic}:{key}:{sequence}"))


_ROWS = (
    "rows AS (INSERT INTO outbox (topic, key, sequence, bucket, event_id, headers, value)"
    " SELECT t, k, s, b, e, h::jsonb, v FROM unnest($1::text[], $2::text[], $3::bigint[],"
    " $4::smallint[], $5::text[], $6::text[], $7::bytea[]) AS r(t, k, s, b, e, h, v))"
)
#: The rows, and the relay's NOTIFY once per transaction ($9).
_INSERT_ROWS = f"WITH {_ROWS} SELECT pg_notify($8, '') WHERE $9::boolean"
#: The same, and the sequence rows of keys never used before (a used one: unique violation).
_INSERT_ROWS_OF_NEW_KEYS = (
    "WITH sequences AS (INSERT INTO outbox_sequences (topic, key, last_sequence)"  # noqa: S608
    f" SELECT * FROM unnest($10::text[], $11::text[], $12::bigint[])), {_ROWS}"
    " SELECT pg_notify($8, '') WHERE $9::boolean"
)


class PostgresOutbox:
    """Implements :class:`calsync_common.ports.Outbox` on a connection inside a transaction."""

    def __init__(self, conn: Connection, source: str) -> None:
        self._conn = conn
        self._source = source
        self._notified = False

    async def add(
        self,
        payload: EventPayload,
        *,
        subject: str | None = None,
        event_id: str | None = None,
        topic: str | None = None,
    ) -> OutboxEntry:
        key = payload.partition_key()
        destination = topic or payload.topic
        sequence = await self._next_sequence(destination, key)
        ce_id = event_id or event_id_for(self._source, destination, key, sequence)
        message = encode(
            payload,
            source=self._source,
            subject=subject,
            event_id=ce_id,
            sequence=sequence,
            time=datetime.now(UTC),
        )
        headers = inject(list(message.headers.items()))
        return await self._insert(destination, key, sequence, ce_id, headers, message.value)

    async def add_many(
        self, payloads: Sequence[EventPayload], *, new_keys: bool = False
    ) -> list[OutboxEntry]:
        """``add`` for many payloads in two statements: the sequences of all their keys at once
        (each key advanced by its count, under the same row locks), then every row. With
        ``new_keys`` (no key used before), one: the keys' sequence rows are created, starting at
        1, by the statement that inserts the rows (an existing one is a unique violation)."""
        if not payloads:
            return []
        routed = [(p.topic, p.partition_key(), p) for p in payloads]
        counts: dict[tuple[str, str], int] = {}
        for topic, key, _ in routed:
            counts[(topic, key)] = counts.get((topic, key), 0) + 1
        pairs = sorted(counts)  # a fixed lock order: concurrent batches cannot deadlock
        sequences = ([t for t, _ in pairs], [k for _, k in pairs], [counts[p] for p in pairs])
        if new_keys:
            following = dict.fromkeys(pairs, 0)
        else:
            rows = await self._conn.fetch(
                "INSERT INTO outbox_sequences AS s (topic, key, last_sequence)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])"
                " ON CONFLICT (topic, key) DO UPDATE"
                " SET last_sequence = s.last_sequence + EXCLUDED.last_sequence"
                " RETURNING topic, key, last_sequence",
                *sequences,
            )
            # The first sequence each key's payloads take, in their order.
            following = {
                (r["topic"], r["key"]): int(r["last_sequence"]) - counts[(r["topic"], r["key"])]
                for r in rows
            }
        now = datetime.now(UTC)
        entries: list[OutboxEntry] = []
        columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
        for topic, key, payload in routed:
            following[(topic, key)] += 1
            sequence = following[(topic, key)]
            ce_id = event_id_for(self._source, topic, key, sequence)
            message = encode(
                payload, source=self._source, event_id=ce_id, sequence=sequence, time=now
            )
            headers = inject(list(message.headers.items()))
            for column, value in zip(
                columns,
                (
                    topic,
                    key,
                    sequence,
                    bucket_of(key),
                    ce_id,
                    _headers_json(headers),
                    message.value,
                ),
                strict=True,
            ):
                column.append(value)
            entries.append(OutboxEntry(topic=topic, key=key, sequence=sequence, event_id=ce_id))
        if new_keys:
            await self._conn.execute(
                _INSERT_ROWS_OF_NEW_KEYS, *columns, NOTIFY_CHANNEL, not self._notified, *sequences
            )
        else:
            await self._conn.execute(_INSERT_ROWS, *columns, NOTIFY_CHANNEL, not self._notified)
        self._notified = True
        return entries

    async def tombstone(self, topic: str, key: str) -> OutboxEntry:
        known = topic_named(topic)
        if known is not None and known.cleanup != "compact":
            raise ValueError(f"{topic} is not compacted: a tombstone would delete nothing")
        sequence = await self._next_sequence(topic, key)
        ce_id = event_id_for(self._source, topic, key, sequence)
        headers = list(
            tombstone_headers(event_id=ce_id, source=self._source, sequence=sequence).items()
        )
        return await self._insert(topic, key, sequence, ce_id, headers, None)

    async def _next_sequence(self, topic: str, key: str) -> int:
        value = await self._conn.fetchval(
            "INSERT INTO outbox_sequences AS s (topic, key, last_sequence) VALUES ($1, $2, 1)"
            " ON CONFLICT (topic, key) DO UPDATE SET last_sequence = s.last_sequence + 1"
            " RETURNING last_sequence",
            topic,
            key,
        )
        return int(value)

    async def _insert(
        self,
        topic: str,
        key: str,
        sequence: int,
        event_id: str,
        headers: list[tuple[str, bytes]],
        value: bytes | None,
    ) -> OutboxEntry:
        await self._conn.execute(
            "WITH rows AS (INSERT INTO outbox (topic, key, sequence, bucket, event_id, headers,"
            " value) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7))"
            " SELECT pg_notify($8, '') WHERE $9::boolean",
            topic,
            key,
            sequence,
            bucket_of(key),
            event_id,
            _headers_json(headers),
            value,
            NOTIFY_CHANNEL,
            not self._notified,
        )
        self._notified = True
        return OutboxEntry(topic=topic, key=key, sequence=sequence, event_id=event_id)


def _headers_json(headers: list[tuple[str, bytes]]) -> str:
    return json.dumps([[k, v.decode("latin-1")] for k, v in headers])
