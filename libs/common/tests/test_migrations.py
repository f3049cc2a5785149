"""Migrations apply to an empty database and are idempotent (integration: real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from calsync_common.postgres.migrations import upgrade

ROOT = Path(__file__).resolve().parents[3]
SERVICES = {
    "connector": ROOT / "services/connector/src/calsync_connector/migrations/versions",
    "sync-worker": ROOT / "services/sync-worker/src/calsync_sync_worker/migrations/versions",
    "availability": ROOT / "services/availability/src/calsync_availability/migrations/versions",
}


@pytest.mark.integration
@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_migrations_apply_to_empty_database_and_are_idempotent(
    fresh_database: str, service: str
) -> None:
    await upgrade(fresh_database, service, SERVICES[service])
    conn = await asyncpg.connect(fresh_database)
    try:
        table = f"alembic_version_{service.replace('-', '_')}"
        first = await conn.fetch(f"SELECT version_num FROM {table}")
        assert len(first) == 1
        assert await conn.fetchval("SELECT to_regclass('kafka_consumer_offsets') IS NOT NULL")
        await upgrade(fresh_database, service, SERVICES[service])
        second = await conn.fetch(f"SELECT version_num FROM {table}")
        assert second == first
    finally:
        await conn.close()
