"""The root conftest's throw-away databases: dropped after use; leftovers of crashed runs swept.

``fresh_database`` is ``async with databases.throwaway()`` around the test, so these tests drive
that context manager directly and look at the server after it has exited.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import asyncpg
import pytest

if TYPE_CHECKING:
    from conftest import Databases

pytestmark = pytest.mark.integration


async def test_a_throwaway_database_is_dropped_on_exit_even_with_a_connection_open(
    databases: Databases,
) -> None:
    async with databases.throwaway() as dsn:
        name = dsn.rpartition("/")[2]
        # Left open on purpose, as by a process killed mid-test.
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'btree_gist'"), (
                "throw-away databases come with btree_gist"
            )
            assert await databases.exists(name)
        finally:
            conn.terminate()
    assert not await databases.exists(name)


async def test_the_sweep_drops_leftovers_of_crashed_runs_and_keeps_recent_databases(
    databases: Databases,
) -> None:
    crashed = databases.new_name(created=time.time() - 2 * databases.stale_after_s)
    # A leftover named the old way (no time in the name) but created just now: kept.
    recent_old_style = f"t_{uuid.uuid4().hex[:16]}"
    try:
        await databases.create(crashed)
        await databases.create(recent_old_style)
        async with databases.throwaway() as dsn:
            recent = dsn.rpartition("/")[2]
            swept = await databases.sweep()
            assert crashed in swept
            assert recent not in swept
            assert recent_old_style not in swept
            assert await databases.exists(recent)
            assert await databases.exists(recent_old_style)
        assert not await databases.exists(crashed)
    finally:
        await databases.drop(crashed)
        await databases.drop(recent_old_style)
