"""Shared emulator fixtures: an in-process app over plain HTTP for handler tests.

HTTPS fixtures (CA bundle, real port) for conformance tests with MSAL and msgraph-sdk live here
too once the TLS part lands.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable

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
