"""The runner's batch sequence check (``offsets.advance_sequences``) on real PostgreSQL: its
answers, and the plan of its lookup, which must stay a lookup of each batch key by the whole
primary key whatever the statistics say (a join read every key of the group and topic, or, with
no statistics, compared every batch key with every stored one)."""

from __future__ import annotations

import json

import asyncpg
import pytest

from calsync_common.kafka import offsets

pytestmark = pytest.mark.integration


async def test_a_batch_is_checked_against_stored_and_earlier_sequences(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        first = await offsets.advance_sequences(
            conn, "g", "t", [("/s", "a", 1), ("/s", "b", 5), None, ("/s", "a", 2)]
        )
        assert first == [True, True, True, True]
        again = await offsets.advance_sequences(
            conn, "g", "t", [("/s", "a", 2), ("/s", "b", 6), ("/s", "b", 6), ("/other", "a", 1)]
        )
        assert again == [False, True, False, True]  # a duplicate within the batch too
        elsewhere = await offsets.advance_sequences(conn, "g2", "t", [("/s", "a", 1)])
        assert elsewhere == [True]  # another group keeps its own
        stored = await conn.fetch(
            "SELECT group_id, source, key, last_sequence FROM kafka_consumer_sequences"
            " ORDER BY 1, 2, 3"
        )
        assert [tuple(r) for r in stored] == [
            ("g", "/other", "a", 1), ("g", "/s", "a", 2), ("g", "/s", "b", 6),
            ("g2", "/s", "a", 1),
        ]  # fmt: skip


@pytest.mark.parametrize("analyzed", [False, True])
async def test_the_lookup_reads_each_key_by_the_primary_key(
    pool: asyncpg.Pool, analyzed: bool
) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO kafka_consumer_sequences (group_id, topic, source, key, last_sequence)"
            " SELECT 'g' || (n % 3), 't', '/s', 'k' || n, 1 FROM generate_series(1, 3000) AS n"
        )
        if analyzed:
            await conn.execute("ANALYZE kafka_consumer_sequences")
        await conn.execute("SET plan_cache_mode = force_generic_plan")  # as the services run
        await conn.execute(f"PREPARE lookup AS {offsets._BATCH_SEQUENCES}")
        keys = ", ".join(f"'k{n}'" for n in range(0, 3000, 3))
        sources = ", ".join("'/s'" for _ in range(0, 3000, 3))
        plan = await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) EXECUTE lookup('g0', 't', ARRAY[{sources}], ARRAY[{keys}])"
        )
        text = json.dumps(json.loads(plan))
        assert '"Index Name": "kafka_consumer_sequences_pkey"' in text
        assert "Seq Scan" not in text
        for column in ("group_id", "topic", "source", "key"):
            assert f"({column} = " in text, column  # each looked up by the whole key
