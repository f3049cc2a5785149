"""Connector test harness: the Graph emulator as a real HTTPS process, the connector on real
PostgreSQL and Kafka, and a browser stand-in that signs sandbox users in.

The browser leg uses the emulator's automation path (``x-emulator-user`` on the authorize URL):
the emulator answers with the ``form_post`` page Microsoft would, and the test posts its hidden
fields to the connector's callback, as the browser would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from calsync_common.contracts.topics import CONNECTIONS
from calsync_common.http.auth import AuthSettings, mint
from calsync_common.runtime import PUBLISHER
from calsync_common.settings import HttpSettings, PlatformSettings
from calsync_common.testing import GraphEmulator, Published, published
from calsync_connector.adapters.identity import MicrosoftSettings
from calsync_connector.adapters.token_cipher import TokenCipherSettings
from calsync_connector.entrypoints.http import init_app
from calsync_connector.settings import ConnectorSettings

RETURN_URL = "http://localhost:3000/settings/calendars"


Emulator = GraphEmulator  # the root conftest runs it (fixture ``graph_emulator``)


@pytest.fixture
def connector_settings(
    infra: object, fresh_database: str, graph_emulator: Emulator, topic_prefix: str
) -> ConnectorSettings:
    return ConnectorSettings(
        platform=PlatformSettings(
            kafka_bootstrap=infra.kafka_bootstrap,  # type: ignore[attr-defined]
            topic_prefix=topic_prefix,
        ),
        http=HttpSettings(port=0),
        database_url=fresh_database,  # type: ignore[arg-type]
        microsoft=MicrosoftSettings(
            authority=f"{graph_emulator.base_url}/common",
            graph_url=f"{graph_emulator.base_url}/v1.0",
            ca_bundle=graph_emulator.ca_path,
        ),
    )


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[str(a["name"])] = a.get("value") or ""


class Harness:
    """Drives the connector like the platform and the user's browser would."""

    def __init__(
        self, client: TestClient[Any, Any], settings: ConnectorSettings, emulator: Emulator
    ) -> None:
        self.client = client
        self.settings = settings
        self.emulator = emulator
        self.browser = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=emulator.ssl()))

    async def close(self) -> None:
        await self.browser.close()

    async def snapshots(self, connection_id: str) -> list[Published]:
        """What the connector published for the connection (sent or still queued), in order."""
        publisher = self.client.server.app[PUBLISHER]  # type: ignore[union-attr]
        return await published(self.settings.dsn, publisher, CONNECTIONS.name, connection_id)

    def headers(self, sub_account_id: str) -> dict[str, str]:
        token = mint(self.settings.auth, subject="platform-user", sub_account_id=sub_account_id)
        return {"Authorization": f"Bearer {token}"}

    def service_headers(self, service: str) -> dict[str, str]:
        token = mint(self.settings.auth, subject=service, service=service)
        return {"Authorization": f"Bearer {token}"}

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.browser.request(
            method, f"{self.emulator.base_url}{path}", json=body
        ) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json(content_type=None)

    async def new_user(self, kind: str = "work", tenant_id: str | None = None) -> dict[str, Any]:
        name = uuid.uuid4().hex[:8]
        domain = "outlook.example" if kind == "personal" else "fabrikam.example"
        body: dict[str, Any] = {
            "kind": kind,
            "userPrincipalName": f"u{name}@{domain}",
            "displayName": f"User {name}",
            "timeZone": "Europe/Bucharest",
        }
        if tenant_id:
            body["tenantId"] = tenant_id
        user: dict[str, Any] = await self.control("POST", "/_emulator/users", body)
        return user

    async def start(self, sub_account_id: str, user_id: str) -> dict[str, Any]:
        resp = await self.client.post(
            f"/v1/sub-accounts/{sub_account_id}/users/{user_id}/connections/outlook",
            json={"return_url": RETURN_URL},
            headers=self.headers(sub_account_id),
        )
        assert resp.status == 201, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    async def consent(self, authorization_url: str, upn: str, **extra: str) -> dict[str, str]:
        """The browser at Microsoft: sign in as ``upn`` and accept; the form it posts back."""
        params = {"x-emulator-user": upn, **extra}
        async with self.browser.get(
            authorization_url, params=params, allow_redirects=False
        ) as resp:
            assert resp.status == 200, await resp.text()
            form = _Form()
            form.feed(await resp.text())
        return form.fields

    async def callback(self, fields: dict[str, str]) -> str:
        """Post the form to the connector; the Location it sends the browser to."""
        resp = await self.client.post("/oauth/callback", data=fields, allow_redirects=False)
        assert resp.status == 303, await resp.text()
        return resp.headers["Location"]

    async def connect(self, sub_account_id: str, user_id: str, upn: str) -> str:
        started = await self.start(sub_account_id, user_id)
        return await self.callback(await self.consent(started["authorization_url"], upn))

    async def get(self, sub_account_id: str, path: str = "") -> aiohttp.ClientResponse:
        return await self.client.get(
            f"/v1/sub-accounts/{sub_account_id}/connections{path}",
            headers=self.headers(sub_account_id),
        )


@pytest.fixture
async def harness(
    connector_settings: ConnectorSettings, graph_emulator: Emulator
) -> AsyncIterator[Harness]:
    app = init_app(connector_settings)
    async with TestClient(TestServer(app)) as client:
        h = Harness(client, connector_settings, graph_emulator)
        try:
            yield h
        finally:
            await h.close()


async def gather_all(*aws: Any) -> list[Any]:
    return list(await asyncio.gather(*aws))


@pytest.fixture(scope="session", autouse=True)
def _connector_secrets_are_known(known_secrets: set[str]) -> None:
    """The development keys and the sandbox client secret must never be logged either."""
    defaults = (
        MicrosoftSettings().client_secret,
        *TokenCipherSettings.development().keys.values(),
        *AuthSettings.development().keys.values(),
    )
    known_secrets.update(s.get_secret_value() for s in defaults)
