"""TLS material, the HTTPS fixture, and ``python -m msgraph_emulator`` end to end."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from msgraph_emulator import tls


def test_prepare_writes_ca_chain_and_private_keys(tmp_path: Path) -> None:
    material = tls.prepare(tmp_path, tls.server_names("127.0.0.1", None))
    assert material.ca_path == tmp_path / "ca.pem"
    assert material.ca_path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert material.cert_path.read_text().count("BEGIN CERTIFICATE") >= 1
    assert (tmp_path / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    assert material.key_path.stat().st_mode & 0o777 == 0o600
    # The CA survives a restart, so bundles already handed out stay valid.
    before = material.ca_path.read_bytes()
    again = tls.prepare(tmp_path, ["localhost"])
    assert again.ca_path.read_bytes() == before
    again.server_context()  # the chain loads with its key


def test_server_names_cover_loopback_and_public_host() -> None:
    names = tls.server_names("0.0.0.0", "https://graph.sandbox.internal:8443")
    assert names == ["localhost", "127.0.0.1", "::1", "graph.sandbox.internal"]


async def test_https_emulator_verifies_with_its_ca_only(https_emulator: Any) -> None:
    good = ssl.create_default_context(cafile=str(https_emulator.ca_path))
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{https_emulator.base_url}/healthz", ssl=good) as resp,
    ):
        assert (await resp.json()) == {"status": "ok"}
    empty = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts nothing
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError, match="CERTIFICATE_VERIFY"):
            await session.get(f"{https_emulator.base_url}/healthz", ssl=empty)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_module_entry_point_serves_https(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "MSGRAPH_EMU_DATA_DIR": str(tmp_path),
        "MSGRAPH_EMU_PORT": str(port),
        "MSGRAPH_EMU_HOST": "127.0.0.1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "msgraph_emulator", env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        ca_file = ""
        # Readiness: wait for the "listening" log line (JSON), not for a timer.
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line, "emulator exited before listening"
            record = json.loads(line)
            ca_file = record.get("ca_file", ca_file)
            if record["message"] == "msgraph emulator listening":
                break
        assert ca_file == str(tmp_path / "ca.pem")
        ctx = ssl.create_default_context(cafile=ca_file)
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"https://localhost:{port}/common/v2.0/.well-known/openid-configuration",
                ssl=ctx,
            ) as resp,
        ):
            doc = await resp.json()
        # Endpoints follow the host the client dialled (no public_url configured).
        assert doc["token_endpoint"] == f"https://localhost:{port}/common/oauth2/v2.0/token"
    finally:
        proc.terminate()
        await proc.wait()
