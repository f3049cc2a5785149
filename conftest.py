"""Session fixtures for real infrastructure, shared by every member's tests.

Kafka and PostgreSQL come from the local stack that ``make test`` starts (settings in the
environment, see ``deploy/local/infra.sh env``) or, where a Docker engine is reachable and no
local stack is configured, from testcontainers. Under ``make test`` (``CALSYNC_REQUIRE_INFRA=1``)
an unreachable broker or database fails the run; it is never skipped. Tests isolate themselves
with random topic, group and database names instead of tearing anything down.
"""

from __future__ import annotations

import asyncio
import gc
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap: str
    #: DSN of an existing database whose role may CREATE DATABASE.
    admin_dsn: str


def _docker_reachable() -> bool:
    return os.path.exists("/var/run/docker.sock") or bool(os.environ.get("DOCKER_HOST"))


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    bootstrap = os.environ.get("CALSYNC_KAFKA_BOOTSTRAP")
    dsn = os.environ.get("CALSYNC_TEST_DATABASE_URL")
    if bootstrap and dsn:
        yield Infra(bootstrap, dsn)
        return
    if not _docker_reachable():
        pytest.fail(
            "no infrastructure: run through `make test` (local Kafka + PostgreSQL) or provide "
            "CALSYNC_KAFKA_BOOTSTRAP and CALSYNC_TEST_DATABASE_URL, or a Docker engine"
        )
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with (
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
        PostgresContainer("postgres:15", driver=None) as pg,
    ):
        yield Infra(kafka.get_bootstrap_server(), pg.get_connection_url())


async def _wait_for_postgres(dsn: str, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            conn = await asyncpg.connect(dsn)
        except (OSError, asyncpg.CannotConnectNowError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)  # polling for readiness, bounded by the deadline
        else:
            await conn.close()
            return


@pytest.fixture
async def fresh_database(infra: Infra) -> str:
    """A new, empty database with btree_gist; its DSN. Random name: no teardown needed."""
    await _wait_for_postgres(infra.admin_dsn)
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(infra.admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = infra.admin_dsn.rpartition("/")
    dsn = f"{base}/{name}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    finally:
        await conn.close()
    return dsn


@pytest.fixture
def unique() -> str:
    """A short random suffix for topic and group names."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def assert_serves_health() -> Callable[[web.Application], Awaitable[None]]:
    """Serve a service's app and check the contract every process keeps (STYLE §6)."""

    async def check(app: web.Application) -> None:
        async with TestClient(TestServer(app)) as client:
            assert (await client.get("/healthz")).status == 200
            ready = await client.get("/readyz")
            assert ready.status == 200, await ready.text()
            assert (await ready.json())["checks"] == {"postgres": "ok", "kafka": "ok"}
            assert "python_info" in await (await client.get("/metrics")).text()
            missing = await client.get("/no-such-route")
            assert missing.status == 404
            assert missing.content_type == "application/problem+json"

    return check


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Surface unclosed sockets, sessions and transports as errors in the test that leaked."""
    yield
    gc.collect()
