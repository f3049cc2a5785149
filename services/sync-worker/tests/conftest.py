"""Sync-worker test harness: the connector's token endpoint played by ``FakeConnector``, and a
sandbox user signed in with MSAL. The Graph emulator itself is the root conftest's session
fixture ``graph_emulator``."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import jwt
import msal
import pytest
import requests
from aiohttp import web

from calsync_common.testing import GraphEmulator

Emulator = GraphEmulator  # the root conftest runs it (fixture ``graph_emulator``)


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


@contextlib.contextmanager
def sign_in(graph_emulator: Emulator, **user: Any) -> Iterator[SignedIn]:
    """A new sandbox user (``user``: extra fields such as ``timeZone``), signed in through MSAL
    with the sandbox app: a real access token."""
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
                json={
                    "kind": "work",
                    "userPrincipalName": upn,
                    "displayName": f"GC {name}",
                    **user,
                },
            )
            assert resp.status_code == 201, resp.text
            created = resp.json()
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
            yield SignedIn(created["id"], upn, result["access_token"])
        finally:
            app.http_client.close()
            http.close()


@pytest.fixture(scope="module")
def signed_in(graph_emulator: Emulator) -> Iterator[SignedIn]:
    """A new sandbox user of the module, signed in (see :func:`sign_in`)."""
    with sign_in(graph_emulator) as user:
        yield user


@pytest.fixture
async def rig(
    infra: Any,
    fresh_database: str,
    graph_emulator: GraphEmulator,
    signed_in: SignedIn,
    topic_prefix: str,
) -> AsyncIterator[Any]:
    """A running sync-worker whose delta runner polls every 0.2 s (modules with a rig of their
    own override it)."""
    from .test_subscriptions import running_rig  # late: that module imports this one

    async with running_rig(
        infra, fresh_database, graph_emulator, signed_in, topic_prefix, delta_every_s=0.2
    ) as r:
        yield r
