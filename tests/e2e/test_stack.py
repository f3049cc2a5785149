"""End to end: the processes `make up` runs start on the real stack, report ready, stop cleanly.

Each service gets a database of its own, as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import asyncpg
import pytest

if TYPE_CHECKING:
    from conftest import Databases

pytestmark = pytest.mark.e2e

SERVICES = {
    "connector": ("calsync_connector", "CONNECTOR"),
    "sync-worker": ("calsync_sync_worker", "SYNC_WORKER"),
    "availability": ("calsync_availability", "AVAILABILITY"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(
    session: aiohttp.ClientSession, url: str, proc: asyncio.subprocess.Process, ssl_ctx: object
) -> dict[str, object]:
    async with asyncio.timeout(60):
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"{url} process exited with {proc.returncode}")
            try:
                async with session.get(url, ssl=ssl_ctx) as resp:  # type: ignore[arg-type]
                    if resp.status == 200:
                        return dict(await resp.json())
            except (aiohttp.ClientError, ssl.SSLError, OSError, FileNotFoundError):
                pass
            await asyncio.sleep(0.2)  # polling readiness, bounded by the timeout


@pytest.fixture
async def service_databases(databases: Databases) -> AsyncIterator[dict[str, str]]:
    """Service name → DSN of a throw-away database of its own."""
    async with contextlib.AsyncExitStack() as dbs:
        yield {name: await dbs.enter_async_context(databases.throwaway()) for name in SERVICES}


@pytest.fixture
async def stack(
    infra: object, service_databases: dict[str, str], tmp_path: Path, topic_prefix: str
) -> AsyncIterator[dict[str, tuple[str, asyncio.subprocess.Process]]]:
    procs: dict[str, tuple[str, asyncio.subprocess.Process]] = {}
    base_env = {
        **os.environ,
        "CALSYNC_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,  # type: ignore[attr-defined]
        "CALSYNC_TOPIC_PREFIX": topic_prefix,
    }
    emu_port = free_port()
    emu_env = {
        **base_env,
        "MSGRAPH_EMU_PORT": str(emu_port),
        "MSGRAPH_EMU_DATA_DIR": str(tmp_path / "msgraph"),
    }
    procs["msgraph"] = (
        f"https://127.0.0.1:{emu_port}/readyz",
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "msgraph_emulator",
            env=emu_env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        ),
    )
    for name, (module, prefix) in SERVICES.items():
        port = free_port()
        env = {
            **base_env,
            f"{prefix}_DATABASE_URL": service_databases[name],
            f"{prefix}_HTTP__PORT": str(port),
        }
        procs[name] = (
            f"http://127.0.0.1:{port}/readyz",
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            ),
        )
    try:
        yield procs
    finally:
        for _, proc in procs.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_every_process_reports_ready_and_stops_gracefully(
    stack: dict[str, tuple[str, asyncio.subprocess.Process]],
    service_databases: dict[str, str],
    tmp_path: Path,
) -> None:
    async with aiohttp.ClientSession() as session:
        for name, (url, proc) in stack.items():
            ssl_ctx: object = None
            if url.startswith("https"):
                ca = tmp_path / "msgraph" / "ca.pem"
                async with asyncio.timeout(30):
                    while not ca.exists():  # noqa: ASYNC110 (the process writes it at start)
                        await asyncio.sleep(0.1)
                ssl_ctx = ssl.create_default_context(cafile=str(ca))
            body = await wait_ready(session, url, proc, ssl_ctx)
            assert body["status"] in ("ok", "ready"), (name, body)
    for name, dsn in service_databases.items():
        # Each service migrated its own database and nobody else's.
        own = f"alembic_version_{name.replace('-', '_')}"
        conn = await asyncpg.connect(dsn)
        try:
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'alembic\\_version\\_%'"
            )
        finally:
            await conn.close()
        found = sorted(t["tablename"] for t in tables)
        assert found, f"{name} did not migrate its database"
        assert all(t.startswith(own) for t in found), (name, found)
    for name, (_, proc) in stack.items():
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await proc.wait()
        assert code == 0, f"{name} exited with {code} on SIGTERM"
