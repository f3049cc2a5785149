"""Idempotency keys past their retention are swept, in batches; live ones are kept and still
replay their first answer (real PostgreSQL; the running service's own sweeper for the last test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from calsync_availability.service_layer.bookings import IdempotencyKeySweeper
from calsync_common.postgres.uow import PostgresUnitOfWork, PostgresWork
from calsync_common.testing import eventually

from .bookings_harness import Harness, at, serve, settings_for

pytestmark = pytest.mark.integration

RETENTION_S = 24 * 3600.0


async def _serve(infra: Any, dsn: str, prefix: str, every_s: float) -> AsyncIterator[Harness]:
    settings = settings_for(infra.kafka_bootstrap, dsn, prefix).model_copy(
        update={"idempotency_retention_s": RETENTION_S, "idempotency_sweep_every_s": every_s}
    )
    async for harness in serve(settings):
        yield harness


@pytest.fixture
async def quiet(infra: Any, fresh_database: str, topic_prefix: str) -> AsyncIterator[Harness]:
    """The service's own sweeper runs its first round at start, then sleeps for an hour."""
    async for harness in _serve(infra, fresh_database, topic_prefix, 3600):
        yield harness


@pytest.fixture
async def sweeping(infra: Any, fresh_database: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async for harness in _serve(infra, fresh_database, topic_prefix, 0.2):
        yield harness


async def age(h: Harness, hours: float, keys: list[str]) -> None:
    """Make these keys (stored by earlier requests) ``hours`` old."""
    await h.pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - make_interval(hours => $1)"
        " WHERE key = ANY($2::text[])",
        hours,
        keys,
    )


async def old_keys(h: Harness, sub_account_id: str, count: int, hours: float) -> None:
    await h.pool.execute(
        "INSERT INTO idempotency_keys (sub_account_id, key, request_hash, response_status,"
        " response_body, created_at)"
        " SELECT $1, 'old-' || n, '\\x00', 409, '{}', now() - make_interval(hours => $3)"
        " FROM generate_series(1, $2) AS n",
        sub_account_id,
        count,
        hours,
    )


async def stored(h: Harness) -> set[str]:
    return {r["key"] for r in await h.pool.fetch("SELECT key FROM idempotency_keys")}


async def test_a_round_deletes_expired_keys_a_batch_at_a_time_and_keeps_live_ones(
    quiet: Harness,
) -> None:
    h = quiet
    await h.member("ann")
    cal = await h.calendar("personal", ["ann"])
    first = await h.book(cal, at(9), at(10), key="live")
    assert first.status == 201
    assert (await h.book(cal, at(10), at(11), key="almost")).status == 201
    await age(h, 23.9, ["almost"])  # within the retention still
    await old_keys(h, "sa-other", 1500, hours=24.5)

    uow = PostgresUnitOfWork(h.pool, "/calsync/test", PostgresWork)
    sweeper = IdempotencyKeySweeper(uow, RETENTION_S, every_s=3600)
    assert [await sweeper.round() for _ in range(3)] == [1000, 500, 0]
    assert await stored(h) == {"live", "almost"}

    # A live key still answers its first answer, byte for byte.
    again = await h.book(cal, at(9), at(10), key="live")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.read() == await first.read()


async def _only(h: Harness, keys: set[str]) -> bool:
    return await stored(h) == keys


async def test_the_running_service_sweeps_expired_keys(sweeping: Harness) -> None:
    h = sweeping
    await h.member("ann")
    cal = await h.calendar("personal", ["ann"])
    assert (await h.book(cal, at(9), at(10), key="kept")).status == 201
    assert (await h.book(cal, at(10), at(11), key="expired")).status == 201
    await age(h, 25, ["expired"])
    await eventually(lambda: _only(h, {"kept"}))
    # An expired key counts as never used: the same key books anew (here: refused, the slot
    # being taken by its own earlier booking, which the key no longer remembers).
    again = await h.book(cal, at(10), at(11), key="expired")
    assert again.status == 409
    assert "Idempotent-Replayed" not in again.headers
