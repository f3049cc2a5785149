"""Sync-worker test harness: the Graph emulator as a real HTTPS process (one per session).

The same approach as the connector's harness (copied, not imported: services' tests stay apart):
``python -m msgraph_emulator`` on a free port with its own data directory, ready when its CA
exists and its port accepts connections (polled, never slept on).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import jwt
import msal
import pytest
import requests
from aiohttp import web


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


#: The connector's development key (its ``AuthSettings.development()``): the client's default.
DEV_KID = "development"
DEV_KEY = "insecure-development-key-do-not-use-outside-development"
SANDBOX_CLIENT_ID = "5f1a0c7e-0b1d-4c4e-9f43-5a6d3e2b7c10"
SANDBOX_SECRET = "sandbox-secret~not-a-real-credential-0123456789"
SCOPES = ["Calendars.ReadWrite", "User.Read"]
REDIRECT = "http://localhost/callback"


# --- the connector's token endpoint -----------------------------------------------------------


@dataclass
class FakeConnector:
    """``POST /internal/v1/connections/{id}/access-token``, checking the service JWT."""

    #: connection id → access token to hand out (default: ``tok-{id}-{n}``, n = fetch number)
    tokens: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    lifetime_s: float = 3600.0
    fetches: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(
            "/internal/v1/connections/{connection_id}/access-token", self.access_token
        )
        return app

    def total(self) -> int:
        return sum(self.fetches.values())

    async def access_token(self, request: web.Request) -> web.Response:
        try:
            self._verify(request.headers.get("Authorization", ""))
        except (jwt.PyJWTError, ValueError) as exc:
            self.refused.append(type(exc).__name__)
            return problem(401, "unauthenticated")
        cid = request.match_info["connection_id"]
        n = self.fetches[cid] = self.fetches.get(cid, 0) + 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if cid.startswith("reauth"):
            return problem(409, "reauth_required")
        if cid.startswith("disconnected"):
            return problem(409, "connection_disconnected")
        if cid.startswith("unknown"):
            return problem(404, "connection_not_found")
        if cid.startswith("down"):
            return problem(503, "service_unavailable")
        expires = datetime.now(UTC) + timedelta(seconds=self.lifetime_s)
        token = self.tokens.get(cid, f"tok-{cid}-{n}")
        return web.json_response({"access_token": token, "expires_at": expires.isoformat()})

    @staticmethod
    def _verify(authorization: str) -> None:
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer":
            raise ValueError("not a bearer token")
        if jwt.get_unverified_header(token).get("kid") != DEV_KID:
            raise ValueError("unknown kid")
        claims = jwt.decode(
            token,
            DEV_KEY,
            algorithms=["HS256"],
            audience="calsync-connector",
            issuer="https://platform.calsync.dev",
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
        if claims.get("svc") != "sync-worker" or "sub_account_id" in claims:
            raise ValueError("not the sync-worker's service token")


def problem(status: int, code: str) -> web.Response:
    body = {"type": f"https://calsync.dev/problems/{code}", "status": status, "code": code}
    return web.json_response(body, status=status, content_type="application/problem+json")


@dataclass
@dataclass(frozen=True)
class SignedIn:
    user_id: str
    upn: str
    access_token: str


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[str(a["name"])] = a.get("value") or ""


@pytest.fixture(scope="module")
def signed_in(graph_emulator: Emulator) -> Iterator[SignedIn]:
    """A new sandbox user, signed in through MSAL with the sandbox app: a real access token."""
    with pytest.MonkeyPatch.context() as mp:
        # requests lets these override ``verify`` (MSAL's session too): the emulator's CA only.
        mp.delenv("REQUESTS_CA_BUNDLE", raising=False)
        mp.delenv("CURL_CA_BUNDLE", raising=False)
        http = requests.Session()
        http.verify = str(graph_emulator.ca_path)
        app = msal.ConfidentialClientApplication(
            SANDBOX_CLIENT_ID,
            client_credential=SANDBOX_SECRET,
            authority=f"{graph_emulator.base_url}/common",
            verify=str(graph_emulator.ca_path),
            instance_discovery=False,
        )
        try:
            name = uuid.uuid4().hex[:8]
            upn = f"gc{name}@fabrikam.example"
            resp = http.post(
                f"{graph_emulator.base_url}/_emulator/users",
                json={"kind": "work", "userPrincipalName": upn, "displayName": f"GC {name}"},
            )
            assert resp.status_code == 201, resp.text
            user = resp.json()
            flow = app.initiate_auth_code_flow(
                SCOPES, redirect_uri=REDIRECT, response_mode="form_post"
            )
            page = http.get(
                flow["auth_uri"], params={"x-emulator-user": upn}, allow_redirects=False
            )
            assert page.status_code == 200, page.text
            form = _Form()
            form.feed(page.text)
            result = app.acquire_token_by_auth_code_flow(flow, form.fields)
            assert "access_token" in result, result.get("error")
            yield SignedIn(user["id"], upn, result["access_token"])
        finally:
            app.http_client.close()
            http.close()
