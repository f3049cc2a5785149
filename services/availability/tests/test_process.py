"""The availability process on real PostgreSQL and Kafka: healthy, ready, metrics."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from calsync_availability.entrypoints.http import init_app
from calsync_availability.settings import AvailabilitySettings
from calsync_common.settings import HttpSettings, PlatformSettings

pytestmark = pytest.mark.integration


async def test_ready_on_real_infrastructure(infra: object, fresh_database: str) -> None:
    settings = AvailabilitySettings(
        platform=PlatformSettings(kafka_bootstrap=infra.kafka_bootstrap),  # type: ignore[attr-defined]
        http=HttpSettings(port=0),
        database_url=fresh_database,  # type: ignore[arg-type]
    )
    async with TestClient(TestServer(init_app(settings))) as client:
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        assert ready.status == 200, await ready.text()
        assert (await ready.json())["checks"] == {"postgres": "ok", "kafka": "ok"}
        metrics = await client.get("/metrics")
        assert "python_info" in await metrics.text()
        missing = await client.get("/no-such-route")
        assert missing.status == 404
        assert missing.content_type == "application/problem+json"
