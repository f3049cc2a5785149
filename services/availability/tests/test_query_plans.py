"""The hot read statements keep their indexes under the pool's generic plans (real PostgreSQL).

The service's connections run ``plan_cache_mode = force_generic_plan`` (``bootstrap.SESSION``):
a generic plan is planned once without the parameters' values, so a statement that would fall
back to scanning a table for some values scans it for all. Seeded with enough rows that a scan
costs more than a lookup, each statement must reach the busy events through ``outlook_events_busy``
and the freshness rows by primary key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from asyncpg import Range

from calsync_availability.adapters import busy_queries, member_busy_query
from calsync_availability.bootstrap import MIGRATIONS, SERVICE, SESSION
from calsync_common.postgres.migrations import upgrade

pytestmark = pytest.mark.integration

START = datetime(2027, 1, 4, tzinfo=UTC)
SUB = "sub-plans"
CALENDAR = "AAMk-plans"
USERS, EVENTS = 1000, 30


@pytest.fixture
async def conn(fresh_database: str) -> AsyncIterator[asyncpg.Connection]:
    await upgrade(fresh_database, SERVICE, MIGRATIONS)
    connection = await asyncpg.connect(fresh_database, server_settings=SESSION)
    try:
        ids = [uuid.UUID(int=u + 1) for u in range(USERS)]
        await connection.copy_records_to_table(
            "outlook_connections",
            columns=["connection_id", "version", "sub_account_id", "user_id", "status",
                     "sync_preference", "linked_calendar_id", "conflict_calendar_ids",
                     "blocking_show_as", "time_zone", "changed_at"],
            records=[(c, 1, SUB, f"user-{u}", "active", "one_way", CALENDAR, [CALENDAR],
                      ["busy"], None, START) for u, c in enumerate(ids)],
        )  # fmt: skip
        await connection.copy_records_to_table(
            "outlook_calendar_freshness",
            columns=["connection_id", "calendar_id", "status", "subscription",
                     "last_synced_at", "changed_at"],
            records=[(c, CALENDAR, "healthy", "active", START, START) for c in ids],
        )  # fmt: skip
        await connection.copy_records_to_table(
            "outlook_events",
            columns=["connection_id", "calendar_id", "event_id", "during", "show_as",
                     "is_all_day", "booking_id", "ce_sequence"],
            records=[(c, CALENDAR, f"e{n}",
                      Range(START + timedelta(hours=7 * n), START + timedelta(hours=7 * n + 1)),
                      "busy", False, None, n + 1) for c in ids for n in range(EVENTS)],
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO booking_calendars (calendar_id, sub_account_id, name, type, slot_length,"
            " buffer_before, buffer_after, minimum_notice, outlook_conflicts, on_stale,"
            " stale_after, version, created_at, updated_at)"
            " SELECT gen_random_uuid(), $1, 'c' || n, 'personal', '1 hour', '0', '0', '0', true,"
            " 'fail_closed', '15 minutes', 1, $2, $2 FROM generate_series(1, 2000) AS n",
            SUB,
            START,
        )
        await connection.execute("ANALYZE")
        yield connection
    finally:
        await connection.close()


async def generic_plan(conn: asyncpg.Connection, sql: str, *literals: str) -> dict[str, Any]:
    """The plan the pool's sessions run for ``sql``: prepared by name (as asyncpg prepares it),
    then EXPLAIN of an execution with these SQL literals."""
    await conn.execute(f"PREPARE hot AS {sql}")
    try:
        found = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE hot({', '.join(literals)})")
    finally:
        await conn.execute("DEALLOCATE hot")
    return dict(json.loads(found)[0]["Plan"])


def scans(node: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(node type, relation, index) of every scan in the plan."""
    found = []
    if "Relation Name" in node:
        found.append((node["Node Type"], node["Relation Name"], node.get("Index Name", "")))
    for child in node.get("Plans", []):
        found.extend(scans(child))
    return found


def uses_parameters(node: dict[str, Any]) -> bool:
    return "$1" in json.dumps(node)


WINDOW = ("'2027-01-07T00:00:00Z'", "'2027-01-14T00:00:00Z'")


@pytest.mark.parametrize("freshness", [True, False])
@pytest.mark.parametrize("version", [True, False])
async def test_the_busy_window_statement_reads_by_index(
    conn: asyncpg.Connection, freshness: bool, version: bool
) -> None:
    sql = member_busy_query._STATEMENTS[(True, freshness, version)]
    calendar = ["'0b6f6c1e-6a44-4bd4-9f44-1f1f9c9a2b10'"] if version else []
    plan = await generic_plan(conn, sql, f"'{SUB}'", "ARRAY['user-7']", *WINDOW, *calendar)
    assert uses_parameters(plan)  # generic: planned without the values
    found = scans(plan)
    assert ("outlook_events", "outlook_events_busy") in {(r, i) for _, r, i in found}
    assert [s for s in found if s[0] == "Seq Scan" and s[1].startswith("outlook_")] == []
    if freshness:
        assert ("outlook_calendar_freshness", "outlook_calendar_freshness_pkey") in {
            (r, i) for _, r, i in found
        }
    if version:  # the calendar's version by its key, never a scan of the calendars
        assert ("booking_calendars", "booking_calendars_pkey") in {(r, i) for _, r, i in found}


async def test_the_freshness_statement_looks_calendars_up_by_key(
    conn: asyncpg.Connection,
) -> None:
    plan = await generic_plan(
        conn, busy_queries._FRESHNESS, f"'{SUB}'", "ARRAY['user-7', 'user-8']"
    )
    found = scans(plan)
    assert [s for s in found if s[0] == "Seq Scan"] == []
    assert ("outlook_calendar_freshness", "outlook_calendar_freshness_pkey") in {
        (r, i) for _, r, i in found
    }
