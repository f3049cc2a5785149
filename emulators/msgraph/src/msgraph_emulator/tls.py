"""HTTPS for the emulator: a local CA (kept in ``data_dir``) and a server certificate.

Clients trust ``{data_dir}/ca.pem`` (``verify=`` in requests/MSAL, ``SSL_CERT_FILE``,
``REQUESTS_CA_BUNDLE``). The CA is reused across restarts so a bundle handed to a client stays
valid; the server certificate is issued fresh at each start.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import trustme

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsMaterial:
    ca_path: Path
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))


def server_names(host: str, public_url: str | None) -> list[str]:
    """Loopback names plus the bind host and the public URL's host when they are real names."""
    names = list(LOOPBACK_NAMES)
    extra = [host, urlsplit(public_url).hostname if public_url else None]
    for name in extra:
        if not name or name in names:
            continue
        try:
            if ipaddress.ip_address(name).is_unspecified:
                continue  # 0.0.0.0 / :: are bind-all addresses, not names a client can dial
        except ValueError:
            pass
        names.append(name)
    return names


def _load_or_create_ca(data_dir: Path) -> trustme.CA:
    ca_path, key_path = data_dir / "ca.pem", data_dir / "ca-key.pem"
    if ca_path.exists() and key_path.exists():
        return trustme.CA.from_pem(ca_path.read_bytes(), key_path.read_bytes())
    ca = trustme.CA(organization_name="msgraph-emulator sandbox CA")
    ca.cert_pem.write_to_path(str(ca_path))
    _write_private(key_path, ca.private_key_pem.bytes())
    return ca


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def prepare(data_dir: Path, names: list[str]) -> TlsMaterial:
    """Write ``ca.pem``, ``server.pem`` (chain) and ``server-key.pem`` under ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ca = _load_or_create_ca(data_dir)
    leaf = ca.issue_cert(*names, common_name=names[0])
    cert_path, key_path = data_dir / "server.pem", data_dir / "server-key.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    _write_private(key_path, leaf.private_key_pem.bytes())
    return TlsMaterial(ca_path=data_dir / "ca.pem", cert_path=cert_path, key_path=key_path)
