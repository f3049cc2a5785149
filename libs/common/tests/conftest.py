"""Fixtures for the plumbing tests: a database with the plumbing tables and an applied log."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from calsync_common.kafka.producer import EventPublisher
from calsync_common.postgres.migrations import upgrade_plumbing

APPLIED_DDL = """
CREATE TABLE applied (
    event_id  text   NOT NULL,
    offset_no bigint NOT NULL,
    payload   jsonb  NOT NULL
)
"""


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    await upgrade_plumbing(fresh_database, "test")
    async with asyncpg.create_pool(fresh_database, min_size=1, max_size=4) as p:
        # No unique constraint on purpose: a duplicate application must be visible as a row.
        await p.execute(APPLIED_DDL)
        yield p


@pytest.fixture
async def publisher(infra: object) -> AsyncIterator[EventPublisher]:
    p = EventPublisher(infra.kafka_bootstrap, client_id="test", source="/calsync/test")  # type: ignore[attr-defined]
    await p.start()
    try:
        yield p
    finally:
        await p.stop()
