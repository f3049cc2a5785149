"""Consumer offsets kept in PostgreSQL, in the same transaction as the state they produced.

The row is locked (``FOR UPDATE``) for the whole batch, so two consumers that both believe they
own a partition during a rebalance cannot both apply it: the second sees the moved offset and
drops what was already applied.
"""

from __future__ import annotations

from calsync_common.postgres import Connection

OFFSETS_DDL = """
CREATE TABLE IF NOT EXISTS kafka_consumer_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
)
"""


async def stored_offsets(conn: Connection, group_id: str, topic: str) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT partition, next_offset FROM kafka_consumer_offsets"
        " WHERE group_id = $1 AND topic = $2",
        group_id,
        topic,
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def lock_offset(conn: Connection, group_id: str, topic: str, partition: int) -> int | None:
    """The stored next offset, row-locked until the transaction ends (None: never stored)."""
    await conn.execute(
        "INSERT INTO kafka_consumer_offsets (group_id, topic, partition, next_offset)"
        " VALUES ($1, $2, $3, -1) ON CONFLICT DO NOTHING",
        group_id,
        topic,
        partition,
    )
    value = await conn.fetchval(
        "SELECT next_offset FROM kafka_consumer_offsets"
        " WHERE group_id = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
        group_id,
        topic,
        partition,
    )
    return None if value is None or value < 0 else int(value)


async def save_offset(
    conn: Connection, group_id: str, topic: str, partition: int, next_offset: int
) -> None:
    await conn.execute(
        "UPDATE kafka_consumer_offsets SET next_offset = $4, updated_at = now()"
        " WHERE group_id = $1 AND topic = $2 AND partition = $3",
        group_id,
        topic,
        partition,
        next_offset,
    )
