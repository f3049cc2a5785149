"""Session fixtures for real infrastructure, shared by every member's tests.

Kafka and PostgreSQL come from the local stack that ``make test`` starts (settings in the
environment, see ``deploy/local/infra.sh env``) or, where a Docker engine is reachable and no
local stack is configured, from testcontainers. An unreachable broker or database fails the run;
it is never skipped. Tests isolate themselves with random topic, group and database names; the
throw-away databases are dropped after use, and leftovers of crashed runs at the next session.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pythonjsonlogger.json import JsonFormatter

from calsync_common.logging import NOISY_LOGGERS, TraceContextFilter, quiet_noisy_loggers
from calsync_common.testing import GraphEmulator, running_graph_emulator


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
    # testcontainers.community.* since 4.15: the old testcontainers.<module> paths warn.
    from testcontainers.community.postgres import PostgresContainer

    with _kafka_container() as kafka, PostgresContainer("postgres:15", driver=None) as pg:
        yield Infra(kafka, pg.get_connection_url())


KAFKA_IMAGE = "apache/kafka:4.1.1"
_KAFKA_CLIENT_PORT = 9092  # inside the container; Docker maps it to a random host port
_KAFKA_START = "/tmp/calsync-start.sh"  # noqa: S108 (a path inside the container)


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    """apache/kafka (KRaft, one broker+controller node) under testcontainers; its bootstrap.

    testcontainers' own KafkaContainer runs Confluent's cp-kafka images only: it drives their
    start scripts (/etc/confluent/docker/*), and ``with_kraft()`` compares the image tag with
    Confluent Platform's 7.0.0, so it rejects apache/kafka:4.1.1. This image is configured by
    KAFKA_* variables instead (as in docker-compose.yml). The listener clients use must advertise
    the host port Docker mapped, known only once the container runs, so the container waits for
    a start script copied in then, as KafkaContainer does for cp-kafka.

    Written against testcontainers 4.15's source and type-checked, but not yet run: the machines
    this was written on have no Docker engine and no image registry.
    """
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_exposed_ports(_KAFKA_CLIENT_PORT)
        .with_envs(
            CLUSTER_ID="4L6g3nShT-eMCtK--X86sw",
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9094",
            KAFKA_LISTENERS=f"PLAINTEXT://:{_KAFKA_CLIENT_PORT},BROKER://:9093,CONTROLLER://:9094",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=(
                "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            KAFKA_INTER_BROKER_LISTENER_NAME="BROKER",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_NUM_PARTITIONS="3",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
            KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
        )
        # The ".ready" flag is copied after the script, so sh never reads a half-written one.
        .with_command(
            [
                "sh",
                "-c",
                f"while [ ! -f {_KAFKA_START}.ready ]; do sleep 0.1; done; exec sh {_KAFKA_START}",
            ]
        )
    )
    with container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(_KAFKA_CLIENT_PORT)
        script = (
            f"export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://{host}:{port},BROKER://$(hostname):9093\n"
            "exec /etc/kafka/docker/run\n"
        )
        container.copy_into_container(script.encode(), _KAFKA_START)
        container.copy_into_container(b"", f"{_KAFKA_START}.ready")
        # Logged by KafkaRaftServer once the broker is unfenced and serving.
        ready = LogMessageWaitStrategy(re.compile(r"Kafka Server started"))
        ready.with_startup_timeout(120).wait_until_ready(container)
        yield f"{host}:{port}"


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


#: Throw-away database names carry their creation time (hex Unix seconds): t_<time>_<random>.
_NAME = re.compile(r"t_(?P<created>[0-9a-f]{8})_[0-9a-f]{12}")
#: Names from before the time was in them; their age comes from the database's files.
_OLD_NAME = "^t_[0-9a-f]{16}$"


@dataclass(frozen=True)
class Databases:
    """Throw-away databases on the server of ``admin_dsn``: created empty, dropped after use.

    A run that dies before its teardown leaves its databases behind; ``sweep`` drops those at
    the next session. Only databases older than ``stale_after_s`` go: a test session lasts
    minutes, so one running concurrently (another checkout on the same server) keeps its own.
    """

    admin_dsn: str
    stale_after_s: float = 3600.0

    @staticmethod
    def new_name(created: float | None = None) -> str:
        stamp = int(time.time() if created is None else created)
        return f"t_{stamp:08x}_{uuid.uuid4().hex[:12]}"

    def dsn(self, name: str) -> str:
        base, _, _ = self.admin_dsn.rpartition("/")
        return f"{base}/{name}"

    async def create(self, name: str) -> str:
        """A new, empty database with btree_gist; its DSN."""
        await self._admin(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(self.dsn(name))
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        finally:
            await conn.close()
        return self.dsn(name)

    async def drop(self, name: str) -> None:
        """Drop it even while connections remain (a killed process's, a pool left open)."""
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def exists(self, name: str) -> bool:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def throwaway(self) -> AsyncIterator[str]:
        """A new database for the body of the ``async with``; its DSN. Dropped on the way out."""
        name = self.new_name()
        try:
            yield await self.create(name)
        finally:
            await self.drop(name)

    async def sweep(self) -> list[str]:
        """Drop the throw-away databases older than ``stale_after_s``; their names."""
        cutoff = time.time() - self.stale_after_s
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            stale = [
                name
                for (name,) in await conn.fetch("SELECT datname FROM pg_database")
                if (m := _NAME.fullmatch(name)) and int(m["created"], 16) < cutoff
            ]
            stale += await self._stale_by_files(conn)
        finally:
            await conn.close()
        for name in stale:
            await self.drop(name)
        return stale

    async def _stale_by_files(self, conn: asyncpg.Connection) -> list[str]:
        """Old-style names, aged by their files (reading those takes a superuser)."""
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname ~ $1"
                " AND (pg_stat_file('base/' || oid || '/PG_VERSION', true)).modification"
                " < now() - make_interval(secs => $2)",
                _OLD_NAME,
                self.stale_after_s,
            )
        except asyncpg.InsufficientPrivilegeError:
            return []
        return [r["datname"] for r in rows]

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


@pytest.fixture(scope="session")
async def databases(infra: Infra) -> Databases:
    """Creates throw-away databases; leftovers of earlier, crashed runs are swept first."""
    await _wait_for_postgres(infra.admin_dsn)
    dbs = Databases(infra.admin_dsn)
    await dbs.sweep()
    return dbs


@pytest.fixture
async def fresh_database(databases: Databases) -> AsyncIterator[str]:
    """A new, empty database with btree_gist; its DSN. Dropped when the test is done."""
    async with databases.throwaway() as dsn:
        yield dsn


@pytest.fixture(scope="session")
async def topic_prefix(infra: Infra) -> AsyncIterator[str]:
    """A topic namespace for this session's service apps (``CALSYNC_TOPIC_PREFIX``): they read
    only what this session published, and their topics are deleted at the end."""
    from aiokafka.admin import AIOKafkaAdminClient

    prefix = f"t{uuid.uuid4().hex[:10]}."
    yield prefix
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def graph_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphEmulator]:
    """The Graph emulator as a real HTTPS process, sandbox seeded; one per session (tests isolate
    themselves with new users and apps)."""
    with running_graph_emulator(tmp_path_factory.mktemp("msgraph")) as emulator:
        yield emulator


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
            checks = (await ready.json())["checks"]
            assert {"postgres", "kafka", "topics", "outbox"} <= set(checks), checks
            assert set(checks.values()) == {"ok"}, checks
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


# --- no secret in any log line of the suite ---------------------------------------------------

#: Shapes of credentials: JWTs (access, ID and calsync bearer tokens) and the emulator's opaque
#: authorization codes (``1.EMU.``) and refresh tokens (``0.EMU.``), as Entra's look alike.
SECRET_SHAPES = (
    re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+"),
    re.compile(r"\b[01]\.EMU\.[\w-]{20,}"),
)


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot be formatted is kept by its message
            self.lines.append(str(record.msg))


@pytest.fixture(scope="session")
def known_secrets() -> set[str]:
    """Secret values that fixtures register (client secrets, encryption and signing keys)."""
    return set()


@pytest.fixture(scope="session", autouse=True)
def _no_secret_in_any_log_line(known_secrets: set[str]) -> Iterator[None]:
    """Every log record of the session, with its extras, is searched for credentials when the
    session ends: calsync's own loggers at DEBUG, the rest at INFO, and the libraries known to log
    credentials clamped exactly as the services clamp them (``quiet_noisy_loggers``)."""
    capture = _LogCapture()
    capture.addFilter(TraceContextFilter("test"))  # the services' filter: what they would write
    root = logging.getLogger()
    names = ("calsync_common", "calsync_connector", *NOISY_LOGGERS)
    loud = [logging.getLogger(n) for n in names]
    before = [(root, root.level), *((lg, lg.level) for lg in loud)]
    root.addHandler(capture)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    for lg in loud:
        lg.setLevel(logging.DEBUG)
    quiet_noisy_loggers()
    try:
        yield
        # Whoever replaced the root handlers during the session would have hidden lines from it.
        assert capture in root.handlers, "the log capture was detached during the session"
    finally:
        root.removeHandler(capture)
        for lg, level in before:
            lg.setLevel(level)
    leaks = [
        line
        for line in capture.lines
        if any(shape.search(line) for shape in SECRET_SHAPES)
        or any(secret in line for secret in known_secrets if len(secret) >= 8)
    ]
    assert not leaks, f"{len(leaks)} log line(s) carry a credential, e.g. {leaks[0][:300]}"
