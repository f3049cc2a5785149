"""The connector across a stop and start of PostgreSQL (the local stack's real server): the
platform and the sync-worker meet a clear ``503 dependency_unavailable`` while it is away, never
a 500, and everything answers again once it is back."""

from __future__ import annotations

import asyncio
import os
from typing import Any

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
