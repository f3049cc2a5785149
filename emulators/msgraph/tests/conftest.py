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
                return web.Response(text=request.raw_path.split("validationToken=", 1)[1])
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

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        async with self.cond:
            await asyncio.wait_for(self.cond.wait_for(predicate), within)


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
def auth_headers(
    make_user: Callable[..., User], token_for: Callable[..., str]
) -> Callable[..., Any]:
    """``(user=None, **token_kwargs) -> (user, headers)``: a user (new unless given), a bearer."""

    def _make(user: User | None = None, **kwargs: Any) -> tuple[User, dict[str, str]]:
        who = user or make_user()
        return who, {"Authorization": f"Bearer {token_for(who, **kwargs)}"}

    return _make


# --- HTTPS emulator (identity part) -----------------------------------------------------------


class HttpsEmulator:
    """The emulator on a real TLS port, served by a background thread with its own event loop.

    A thread (not the test loop) because MSAL and other synchronous clients block the calling
    thread: a server on the test loop would deadlock them. Async tests can call it too.
    ``base_url`` (``https://127.0.0.1:{port}``), ``ca_path`` (trust it), ``state`` (live state).
    """

    def __init__(self, data_dir: Any) -> None:
        import socket
        import threading

        from msgraph_emulator import tls

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        port = self._sock.getsockname()[1]
        self.settings = EmulatorSettings(
            data_dir=data_dir, host="127.0.0.1", port=port, seed_sandbox=True
        )
        self.material = tls.prepare(data_dir, tls.server_names("127.0.0.1", None))
        self.ca_path = self.material.ca_path
        self.base_url = f"https://127.0.0.1:{port}"
        self.app = init_app(self.settings)
        self.state: EmulatorState = self.app[STATE]
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="https-emulator", daemon=True)

    def _serve(self) -> None:
        from aiohttp import web

        loop = self._loop
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(self.app)
        try:
            loop.run_until_complete(runner.setup())
            site = web.SockSite(runner, self._sock, ssl_context=self.material.server_context())
            loop.run_until_complete(site.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(timeout=30) or self._error is not None:
            raise RuntimeError("HTTPS emulator did not start") from self._error

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._sock.close()


@pytest.fixture(scope="session")
def https_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterable[HttpsEmulator]:
    """One HTTPS emulator (sandbox seeded) for the session; isolate tests with new users/apps."""
    emulator = HttpsEmulator(tmp_path_factory.mktemp("https-emulator"))
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
async def sandbox_client(tmp_path: Any) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """In-process client (plain HTTP) of an emulator seeded with the built-in sandbox."""
    app = init_app(EmulatorSettings(data_dir=tmp_path, seed_sandbox=True))
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.fixture
def fast_delivery(state: EmulatorState) -> EmulatorState:
    """Millisecond backoff so retry tests finish quickly."""
    state.settings.notification_backoff_initial_s = 0.005
    state.settings.notification_backoff_max_s = 0.02
    return state


async def wait_until(
    state: EmulatorState, predicate: Callable[[], bool], within: float = 5.0
) -> None:
    """Wait until ``predicate`` holds, re-checking whenever the delivery log records something."""
    event = asyncio.Event()
    log = state.subscriptions.deliveries
    listener = event.set
    log.listeners.append(listener)
    try:
        async with asyncio.timeout(within):
            while not predicate():
                await event.wait()
                event.clear()
    finally:
        log.listeners.remove(listener)


SANDBOX_APP_ID = "5f1a0c7e-0b1d-4c4e-9f43-5a6d3e2b7c10"
SANDBOX_APP_SECRET = "sandbox-secret~not-a-real-credential-0123456789"
SANDBOX_REDIRECT = "http://localhost/callback"


class IdentityDriver:
    """Raw OAuth calls against an in-process emulator (no MSAL): authorize, token, PKCE."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @staticmethod
    def pkce() -> tuple[str, str]:
        import base64
        import hashlib
        import secrets

        verifier = secrets.token_urlsafe(32)
        digest = hashlib.sha256(verifier.encode()).digest()
        return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    async def authorize(self, tenant: str = "common", **params: str) -> Any:
        query = {
            "client_id": SANDBOX_APP_ID,
            "response_type": "code",
            "redirect_uri": SANDBOX_REDIRECT,
            "scope": "Calendars.ReadWrite User.Read openid profile offline_access",
            "state": "st-123",
            **params,
        }
        return await self.client.get(
            f"/{tenant}/oauth2/v2.0/authorize", params=query, allow_redirects=False
        )

    async def code(self, user: str, tenant: str = "common", **params: str) -> tuple[str, str]:
        """Sign ``user`` in through the automation path; returns (code, PKCE verifier)."""
        from urllib.parse import parse_qs, urlsplit

        verifier, challenge = self.pkce()
        params.setdefault("code_challenge", challenge)
        params.setdefault("code_challenge_method", "S256")
        resp = await self.authorize(tenant, **{"x-emulator-user": user, **params})
        assert resp.status == 302, await resp.text()
        query = parse_qs(urlsplit(resp.headers["Location"]).query)
        return query["code"][0], verifier

    async def token(self, tenant: str = "common", **form: str) -> Any:
        body = {"client_id": SANDBOX_APP_ID, "client_secret": SANDBOX_APP_SECRET, **form}
        return await self.client.post(f"/{tenant}/oauth2/v2.0/token", data=body)

    async def redeem(self, code: str, verifier: str, tenant: str = "common", **form: str) -> Any:
        return await self.token(
            tenant,
            grant_type="authorization_code",
            code=code,
            code_verifier=verifier,
            redirect_uri=SANDBOX_REDIRECT,
            scope="Calendars.ReadWrite User.Read openid profile offline_access",
            **form,
        )

    async def tokens(self, user: str, tenant: str = "common", **params: str) -> dict[str, Any]:
        code, verifier = await self.code(user, tenant, **params)
        resp = await self.redeem(code, verifier, tenant, client_info="1")
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data

    async def refresh(self, refresh_token: str, tenant: str = "common", **form: str) -> Any:
        return await self.token(
            tenant, grant_type="refresh_token", refresh_token=refresh_token, **form
        )


@pytest.fixture
def idp(sandbox_client: TestClient) -> IdentityDriver:  # type: ignore[type-arg]
    return IdentityDriver(sandbox_client)


# --- Calendars / events (calendar part) ---------------------------------------------------------


class GraphCaller:
    """One signed-in user calling Graph on the in-process emulator: ``(status, json)`` helpers."""

    def __init__(self, client: TestClient, user: User, token: str) -> None:  # type: ignore[type-arg]
        self.client, self.user = client, user
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, Any]:
        """``(status, json or None, response headers)``; ``path`` may be an absolute next link."""
        if path.startswith("http"):
            path = path.split("://", 1)[1].split("/", 1)[1]
            path = "/" + path
        resp = await self.client.request(
            method, path, json=body, headers=self.headers | (headers or {})
        )
        data = await resp.json() if resp.content_length or resp.status not in (204,) else None
        return resp.status, data, resp.headers

    async def get(self, path: str, **headers: str) -> Any:
        status, data, _ = await self.call("GET", path, headers=headers)
        assert status == 200, data
        return data

    async def post(self, path: str, body: Any) -> Any:
        status, data, _ = await self.call("POST", path, body)
        assert status == 201, data
        return data


@pytest.fixture
def graph_as(
    client: TestClient, make_user: Callable[..., User], token_for: Callable[..., str]
) -> Callable[..., GraphCaller]:  # type: ignore[type-arg]
    """``graph_as(user=None, scopes=..., time_zone=...)``: a GraphCaller for a (new) user."""

    def _make(
        user: User | None = None,
        scopes: Iterable[str] = ("Calendars.ReadWrite", "User.Read"),
        **user_kwargs: Any,
    ) -> GraphCaller:
        who = user or make_user(**user_kwargs)
        return GraphCaller(client, who, token_for(who, scopes=scopes))

    return _make


@pytest.fixture
def identity_driver() -> type[IdentityDriver]:
    """The driver class, for tests that build their own emulator (custom settings)."""
    return IdentityDriver
