"""The connector across a stop and start of PostgreSQL (the local stack's real server): the
platform and the sync-worker meet a clear ``503 dependency_unavailable`` while it is away, never
a 500, and everything answers again once it is back."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from calsync_common.runtime import FATAL
from calsync_common.testing import eventually, local_infra

from .conftest import Harness
from .test_tokens import access_token, connect

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("CALSYNC_LOCAL_INFRA"),
        reason="restarts the server: only on the local stack that make test starts",
    ),
]


async def _unavailable(resp: Any) -> None:
    assert resp.status == 503, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert resp.headers["Retry-After"] == "2"
    assert (await resp.json())["code"] == "dependency_unavailable"


async def test_postgres_away_is_503_and_everything_answers_after(harness: Harness) -> None:
    sub_account, connection_id, _ = await connect(harness)
    await asyncio.to_thread(local_infra, "pg-stop")
    try:
        await _unavailable(await access_token(harness, connection_id))
        await _unavailable(await harness.get(sub_account, ""))
    finally:
        await asyncio.to_thread(local_infra, "pg-start")

    async def answers() -> bool:
        return (await access_token(harness, connection_id)).status != 503

    await eventually(answers, timeout_s=30)
    assert (await access_token(harness, connection_id)).status == 200
    listed = await harness.get(sub_account, "")
    assert listed.status == 200, await listed.text()
    assert harness.client.server.app[FATAL] == []  # type: ignore[union-attr]


async def test_a_sign_in_that_arrives_while_postgres_is_away_finishes_on_reload(
    harness: Harness,
) -> None:
    """Microsoft's answer reaches the callback while the database is away: the browser gets a
    page (503, Retry-After) asking for a reload, an API client the 503 problem; the sign-in is
    not consumed, so the same answer posted again once the database is back connects."""
    user = await harness.new_user()
    sub_account = f"sa-{uuid.uuid4().hex[:8]}"
    started = await harness.start(sub_account, "user-1")
    fields = await harness.consent(started["authorization_url"], user["userPrincipalName"])
    await asyncio.to_thread(local_infra, "pg-stop")
    try:
        page = await harness.client.post(
            "/oauth/callback", data=fields, headers={"Accept": "text/html"}, allow_redirects=False
        )
        assert page.status == 503
        assert page.content_type == "text/html"
        assert page.headers["Retry-After"] == "2"
        assert "Reload this page" in await page.text()
        await _unavailable(
            await harness.client.post("/oauth/callback", data=fields, allow_redirects=False)
        )
    finally:
        await asyncio.to_thread(local_infra, "pg-start")

    answers: list[Any] = []

    async def reloaded() -> bool:
        resp = await harness.client.post(
            "/oauth/callback", data=fields, headers={"Accept": "text/html"}, allow_redirects=False
        )
        answers.append(resp)
        return bool(resp.status != 503)

    await eventually(reloaded, timeout_s=30)
    resp = answers[-1]
    assert resp.status == 303, await resp.text()
    query = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert query["status"] == ["connected"]
    assert harness.client.server.app[FATAL] == []  # type: ignore[union-attr]
