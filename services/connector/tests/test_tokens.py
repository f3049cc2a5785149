"""Access tokens for the sync-worker: cached, refreshed once under a burst, revoked cleanly."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from calsync_connector.adapters.token_cipher import Sealed, TokenCipher
from calsync_connector.entrypoints.keys import TOKENS
from calsync_connector.service_layer.connect import token_context

from .conftest import Harness

pytestmark = pytest.mark.integration


async def connect(harness: Harness) -> tuple[str, str, dict[str, Any]]:
    user = await harness.new_user()
    sub_account = f"sa-{uuid.uuid4().hex[:8]}"
    location = await harness.connect(sub_account, "user-1", user["userPrincipalName"])
    return sub_account, parse_qs(urlsplit(location).query)["outlook_connection_id"][0], user


async def access_token(harness: Harness, connection_id: str, service: str = "sync-worker") -> Any:
    return await harness.client.post(
        f"/internal/v1/connections/{connection_id}/access-token",
        headers=harness.service_headers(service),
    )


async def expire_cached_access_tokens(harness: Harness, connection_id: str) -> None:
    """As if the stored access token's hour were over (this process forgets its copy too)."""
    cipher = TokenCipher(harness.settings.tokens)
    cid = uuid.UUID(connection_id)
    conn = await asyncpg.connect(harness.settings.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT key_id, nonce, ciphertext FROM token_caches WHERE connection_id = $1", cid
        )
        sealed = Sealed(row["key_id"], bytes(row["nonce"]), bytes(row["ciphertext"]))
        cache = json.loads(cipher.open(sealed, context=token_context(cid)))
        past = str(int(time.time()) - 60)
        for entry in cache.get("AccessToken", {}).values():
            entry["expires_on"] = past
            entry["extended_expires_on"] = past
        resealed = cipher.seal(json.dumps(cache).encode(), context=token_context(cid))
        await conn.execute(
            "UPDATE token_caches SET key_id = $2, nonce = $3, ciphertext = $4"
            " WHERE connection_id = $1",
            cid,
            resealed.key_id,
            resealed.nonce,
            resealed.ciphertext,
        )
    finally:
        await conn.close()
    harness.client.app[TOKENS].forget(cid)


async def token_requests(harness: Harness) -> float:
    async with harness.browser.get(f"{harness.emulator.base_url}/metrics") as resp:
        text = await resp.text()
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^msgraph_emulator_token_requests_total\{[^}]*\} (\S+)$", text, re.M)
    )


async def test_the_sync_worker_gets_a_token_graph_accepts_and_others_get_none(
    harness: Harness,
) -> None:
    _, connection_id, user = await connect(harness)
    resp = await access_token(harness, connection_id)
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    async with harness.browser.get(
        f"{harness.emulator.base_url}/v1.0/me",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    ) as me:
        assert me.status == 200
        assert (await me.json())["id"] == user["id"]

    before = await token_requests(harness)
    again = await (await access_token(harness, connection_id)).json()
    assert again["access_token"] == body["access_token"]
    assert await token_requests(harness) == before  # served from the cache

    for service in ("availability", "platform"):
        assert (await access_token(harness, connection_id, service)).status == 403
    sub_account_token = harness.headers("sa-any")
    resp = await harness.client.post(
        f"/internal/v1/connections/{connection_id}/access-token", headers=sub_account_token
    )
    assert resp.status == 403
    assert (
        await harness.client.post(f"/internal/v1/connections/{connection_id}/access-token")
    ).status == 401
    assert (await access_token(harness, str(uuid.uuid4()))).status == 404


async def test_a_burst_on_an_expired_token_makes_one_refresh_and_keeps_the_rotated_cache(
    harness: Harness,
) -> None:
    _, connection_id, _ = await connect(harness)
    first = await (await access_token(harness, connection_id)).json()
    await expire_cached_access_tokens(harness, connection_id)
    conn = await asyncpg.connect(harness.settings.dsn)
    try:
        sealed_before = await conn.fetchval(
            "SELECT ciphertext FROM token_caches WHERE connection_id = $1",
            uuid.UUID(connection_id),
        )
        before = await token_requests(harness)
        answers = await asyncio.gather(*(access_token(harness, connection_id) for _ in range(50)))
        bodies = [await a.json() for a in answers]
        sealed_after = await conn.fetchval(
            "SELECT ciphertext FROM token_caches WHERE connection_id = $1",
            uuid.UUID(connection_id),
        )
    finally:
        await conn.close()
    assert {a.status for a in answers} == {200}
    assert len({b["access_token"] for b in bodies}) == 1
    assert bodies[0]["access_token"] != first["access_token"]
    assert await token_requests(harness) - before == 1  # exactly one refresh reached Microsoft
    assert sealed_after != sealed_before  # the rotated refresh token was kept


@pytest.mark.parametrize(
    ("why", "method", "path", "body"),
    [
        ("sessions revoked (AADSTS50173)", "POST", "revoke-sessions", None),
        ("refresh token idle too long (AADSTS700082)", "POST", "age-refresh-tokens", {}),
        ("consent withdrawn (AADSTS65001)", "DELETE", "consents", None),
    ],
    ids=["50173", "700082", "65001"],
)
async def test_a_refused_refresh_needs_reauth_everywhere_and_reconnecting_restores_it(
    harness: Harness, why: str, method: str, path: str, body: Any
) -> None:
    sub_account, connection_id, user = await connect(harness)
    await harness.control(method, f"/_emulator/users/{user['id']}/{path}", body)
    await expire_cached_access_tokens(harness, connection_id)

    resp = await access_token(harness, connection_id)
    assert resp.status == 409
    assert (await resp.json())["code"] == "reauth_required"
    body = await (await harness.get(sub_account, f"/{connection_id}")).json()
    assert body["status"] == "reauth_required"
    last = (await harness.snapshots(connection_id))[-1].value
    assert last is not None
    assert json.loads(last)["status"] == "reauth_required"

    location = await harness.connect(sub_account, "user-1", user["userPrincipalName"])
    assert parse_qs(urlsplit(location).query)["outlook_connection_id"] == [connection_id]
    restored = await (await harness.get(sub_account, f"/{connection_id}")).json()
    assert restored["status"] == "active"
    assert restored["settings"] == body["settings"]
    assert (await access_token(harness, connection_id)).status == 200
