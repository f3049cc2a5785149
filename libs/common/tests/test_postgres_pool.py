"""The services' pool releases connections without asyncpg's reset statement (``open_pool``).

That is safe only while no pooled connection keeps session state; these tests hold both halves:
what the release still does (an open transaction is rolled back), and that no code outside the
outbox relay's own connection takes session-scoped locks, listens or changes session settings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from calsync_common.postgres.pool import open_pool

ROOT = Path(__file__).resolve().parents[3]
#: Statements and calls whose effect outlives a transaction on a session.
SESSION_STATE = re.compile(
    r"pg_(try_)?advisory_lock(_shared)?\s*\(|add_listener\(|(?-i:\bLISTEN\s)|\bSET\s+SESSION\b"
    r"|[\"']SET\s+(?!LOCAL\b)\w+\s*(=|TO\b)|set_config\([^)]*false\)|\.cursor\(",
    re.I,
)
#: The relay holds its bucket locks and LISTENs on a connection it opens itself, not a pooled one.
ALLOWED = {Path("libs/common/src/calsync_common/outbox/relay.py")}


def test_no_code_keeps_session_state_on_a_pooled_connection() -> None:
    sources = [
        p
        for top in ("libs", "services")
        for p in (ROOT / top).glob("*/src/**/*.py")
        if p.relative_to(ROOT) not in ALLOWED
    ]
    assert len(sources) > 50  # the scan really reads the services' code
    offenders = {
        str(p.relative_to(ROOT)): m.group(0).strip()
        for p in sources
        for m in [SESSION_STATE.search(p.read_text())]
        if m is not None
    }
    assert offenders == {}


def test_the_scan_sees_session_state() -> None:
    """The pattern itself: each session-scoped form is caught, their transaction forms are not."""
    caught = [
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_lock($1, b)",
        "await conn.add_listener('x', f)",
        "LISTEN outbox",
        "SET SESSION statement_timeout = 0",
        '"SET search_path TO x"',
        "SELECT set_config('a.b', 'c', false)",
        "conn.cursor(query)",
    ]
    left = [
        "SELECT pg_advisory_xact_lock(1)",
        "SET LOCAL statement_timeout = 0",
        "UPDATE t SET a = 1",
        '"UPDATE t" " SET a = 1"',  # a continued UPDATE (implicit concatenation)
        "ON CONFLICT (k) DO UPDATE\nSET version = EXCLUDED.version",
        '"SET LOCAL lock_timeout TO 5"',
        "SELECT set_config('a.b', 'c', true)",
    ]
    assert [s for s in caught if not SESSION_STATE.search(s)] == []
    assert [s for s in left if SESSION_STATE.search(s)] == []


@pytest.mark.integration
async def test_a_connection_released_inside_a_transaction_comes_back_without_it(
    fresh_database: str,
) -> None:
    async with open_pool(fresh_database, min_size=1, max_size=1) as pool:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE t (n int)")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO t VALUES (1)")
            pid = await conn.fetchval("SELECT pg_backend_pid()")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid  # the same session
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM t") == 0  # rolled back
