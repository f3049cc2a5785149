"""Sync-worker test harness: the Graph emulator as a real HTTPS process (one per session).

The same approach as the connector's harness (copied, not imported: services' tests stay apart):
``python -m msgraph_emulator`` on a free port with its own data directory, ready when its CA
exists and its port accepts connections (polled, never slept on).
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Emulator:
    base_url: str
    ca_path: Path

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    def ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def graph_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """``python -m msgraph_emulator`` on a free port, sandbox seeded; one per session."""
    data_dir = tmp_path_factory.mktemp("msgraph")
    port = _free_port()
    env = {
        **os.environ,
        "MSGRAPH_EMU_PORT": str(port),
        "MSGRAPH_EMU_DATA_DIR": str(data_dir),
        "MSGRAPH_EMU_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "msgraph_emulator"], env=env, stdout=subprocess.DEVNULL
    )
    emulator = Emulator(f"https://127.0.0.1:{port}", data_dir / "ca.pem")
    try:
        deadline = time.monotonic() + 60
        while True:  # readiness by polling, bounded
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
