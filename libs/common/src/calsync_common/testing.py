"""Helpers for tests that drive the plumbing on real infrastructure (the services' tests too).

``eventually`` polls a condition with a deadline (readiness by polling, never by sleeping);
``running`` runs a consumer runner for the duration of a block and stops it as the runtime does;
``running_graph_emulator`` runs the Graph emulator as a real HTTPS process (the root conftest's
session fixture ``graph_emulator``); ``published`` is what a service committed to its outbox for
one key, whether its relay already sent it or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from calsync_common.contracts.topics import topic_named
from calsync_common.kafka.consumer import ConsumerRunner
from calsync_common.kafka.producer import EventPublisher
from calsync_common.postgres import Connection


async def eventually(condition: Callable[[], Awaitable[bool]], timeout_s: float = 60) -> None:
    """Wait until ``condition()`` holds; TimeoutError after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        # Polls a database or a broker (no event to wait on), bounded by the timeout.
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def local_infra(*args: str) -> None:
    """Run the local stack's infra script (``pg-stop``, ``kafka-start``...) for tests that stop
    and start the servers: only where ``make test`` started that stack (CALSYNC_LOCAL_INFRA)."""
    subprocess.run(  # noqa: S603 (the project's own script, named by make test)
        ["bash", os.environ["CALSYNC_LOCAL_INFRA"], *args],  # noqa: S607 (bash from PATH)
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )


def connection(conn: Connection) -> Connection:
    """A ``bind`` for runners whose handlers take the raw connection (plumbing tests only)."""
    return conn


@contextlib.asynccontextmanager
async def running(runner: ConsumerRunner[Any]) -> AsyncIterator[asyncio.Task[None]]:
    """Start the runner's loop; on exit ask it to stop, wait for the batch in flight, close."""
    await runner.start()
    task = asyncio.create_task(runner.run())
    try:
        yield task
    finally:
        runner.request_stop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(15):
                await task
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runner.close()


@dataclass(frozen=True)
class Published:
    """One event a service committed to its outbox (``headers`` as the relay sends them)."""

    sequence: int
    headers: dict[str, str]
    value: bytes | None


async def published(
    database: str | asyncpg.Pool, publisher: EventPublisher, topic: str, key: str
) -> list[Published]:
    """Every event committed to the outbox of ``database`` (a DSN or a pool) for
    ``(topic, key)`` up to now, in
    sequence order: the rows still waiting, and what the relay already put on the broker (it
    deletes what it sent). The outbox is read first: a row gone by then was on the broker
    before, so the broker read that follows finds it."""
    query = "SELECT sequence, headers, value FROM outbox WHERE topic = $1 AND key = $2"
    if isinstance(database, str):
        conn = await asyncpg.connect(database)
        try:
            rows = await conn.fetch(query, topic, key)
        finally:
            await conn.close()
    else:
        rows = await database.fetch(query, topic, key)
    found = {
        int(r["sequence"]): Published(
            int(r["sequence"]), dict(json.loads(r["headers"])), r["value"]
        )
        for r in rows
    }
    known = topic_named(topic)
    if known is None:
        raise ValueError(f"{topic} is not in the topic catalogue")
    cluster_topic = publisher.resolve(topic)
    for record in await _records_of_key(publisher.bootstrap, cluster_topic, key, known.partitions):
        headers = {k: v.decode("latin-1") for k, v in record.headers}
        sequence = int(headers["ce_sequence"])
        found.setdefault(sequence, Published(sequence, headers, record.value))
    return [found[s] for s in sorted(found)]


async def _records_of_key(
    bootstrap: str, topic: str, key: str, partitions: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records of ``key`` in its partition (the producer's default partitioner), from the
    log's start to its end as of now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        every = list(range(partitions))
        tp = TopicPartition(topic, DefaultPartitioner()(key.encode(), every, every))
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, 0)  # before the log start: reset to it (auto_offset_reset)
        found: list[ConsumerRecord[bytes, bytes]] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            found.extend(r for r in batch.get(tp, []) if r.key == key.encode())
        return found
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class GraphEmulator:
    """A running Graph emulator (``python -m msgraph_emulator``): where it is, what to trust."""

    base_url: str
    ca_path: Path

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    def ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))


@contextlib.contextmanager
def running_graph_emulator(data_dir: Path, timeout_s: float = 60) -> Iterator[GraphEmulator]:
    """The emulator as a real HTTPS process on a free port, sandbox seeded; ready when its CA
    exists and its port accepts connections (polled, never slept on)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {
        **os.environ,
        "MSGRAPH_EMU_PORT": str(port),
        "MSGRAPH_EMU_DATA_DIR": str(data_dir),
        "MSGRAPH_EMU_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "msgraph_emulator"], env=env, stdout=subprocess.DEVNULL
    )
    emulator = GraphEmulator(f"https://127.0.0.1:{port}", data_dir / "ca.pem")
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"emulator exited with {proc.returncode}")
            if emulator.ca_path.exists():
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("emulator did not start")
            time.sleep(0.1)
        yield emulator
    finally:
        proc.terminate()
        proc.wait(timeout=30)
