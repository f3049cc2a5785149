"""Shared emulator fixtures: an in-process app over plain HTTP for handler tests.

HTTPS fixtures (CA bundle, real port) for conformance tests with MSAL and msgraph-sdk live here
too once the TLS part lands.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from msgraph_emulator.app import STATE, init_app
from msgraph_emulator.graph.auth import mint_access_token
from msgraph_emulator.settings import EmulatorSettings
from msgraph_emulator.state import EmulatorState
from msgraph_emulator.users import User


@pytest.fixture
def settings(tmp_path: object) -> EmulatorSettings:
    return EmulatorSettings(data_dir=tmp_path, seed_sandbox=False)  # type: ignore[arg-type]


@pytest.fixture
async def client(settings: EmulatorSettings) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = init_app(settings)
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.fixture
def state(client: TestClient) -> EmulatorState:  # type: ignore[type-arg]
    return client.app[STATE]  # type: ignore[index]


@pytest.fixture
def make_user(state: EmulatorState) -> Callable[..., User]:
    def _make(
        *, tenant_id: str | None = None, time_zone: str = "UTC", name: str = "Adele Vance"
    ) -> User:
        uid = str(uuid.uuid4())
        upn = f"{name.split()[0].lower()}.{uid[:8]}@contoso.example"
        return state.users.add(
            User(
                id=uid,
                tenant_id=tenant_id or str(uuid.uuid4()),
                user_principal_name=upn,
                display_name=name,
                time_zone=time_zone,
            )
        )

    return _make


@pytest.fixture
def token_for(state: EmulatorState) -> Callable[..., str]:
    """Mint a Graph access token for a user, bypassing sign-in (handler tests only)."""

    def _mint(
        user: User,
        scopes: Iterable[str] = ("Calendars.ReadWrite", "User.Read"),
        client_id: str = "11111111-2222-3333-4444-555555555555",
        lifetime_s: int = 3600,
    ) -> str:
        return mint_access_token(
            state.signing_key,
            issuer_base=state.settings.base_url,
            user_id=user.id,
            tenant_id=user.tenant_id,
            client_id=client_id,
            scopes=scopes,
            lifetime_s=lifetime_s,
        )

    return _mint


class Webhook:
    """A notification receiver on 127.0.0.1: answers validation, records what Graph POSTs.

    ``/hook`` and ``/lifecycle`` behave like a correct receiver (202 for notifications);
    ``fail_next`` makes the next POSTs answer 503; ``/wrong-echo`` echoes the still-encoded token.
    """

    def __init__(self) -> None:
        from aiohttp import web

        self.changes: list[dict[str, Any]] = []
        self.lifecycle: list[dict[str, Any]] = []
        self.posts: list[dict[str, Any]] = []
        self.validations: list[tuple[str, str, str]] = []  # (path, token, content-type)
        self.fail_next = 0
        self.cond = asyncio.Condition()
        self.server: TestServer | None = None
        self.app = web.Application()
        self.app.router.add_post("/{name}", self._handle)

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        token = request.query.get("validationToken")
        name = request.match_info["name"]
        if token is not None:
            self.validations.append((name, token, request.headers.get("Content-Type", "")))
            if name == "wrong-echo":
                return web.Response(text=request.query_string.split("=", 1)[1])
            if name == "refuse":
                return web.Response(status=403)
            return web.Response(text=token, content_type="text/plain")
        body = await request.json()
        async with self.cond:
            self.posts.append({"path": name, "query": dict(request.query), "body": body})
            if self.fail_next > 0:
                self.fail_next -= 1
                self.cond.notify_all()
                return web.Response(status=503)
            target = self.lifecycle if name == "lifecycle" else self.changes
            target.extend(body["value"])
            self.cond.notify_all()
        return web.Response(status=202)

    def url(self, path: str = "/hook") -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with self.cond:
            await asyncio.wait_for(self.cond.wait_for(predicate), timeout)


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    hook.server = TestServer(hook.app, host="127.0.0.1")
    await hook.server.start_server()
    try:
        yield hook
    finally:
        await hook.server.close()


@pytest.fixture
def auth_headers(make_user: Callable[..., User], token_for: Callable[..., str]) -> Callable[..., Any]:
    """``(user=None, **token_kwargs) -> (user, headers)``: a user (new unless given) and a bearer."""

    def _make(user: User | None = None, **kwargs: Any) -> tuple[User, dict[str, str]]:
        who = user or make_user()
        return who, {"Authorization": f"Bearer {token_for(who, **kwargs)}"}

    return _make
