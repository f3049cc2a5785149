"""The availability process on real PostgreSQL and Kafka: healthy, ready, metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from calsync_availability.entrypoints.http import init_app
from calsync_availability.settings import AvailabilitySettings
from calsync_common.settings import HttpSettings, PlatformSettings

pytestmark = pytest.mark.integration


async def test_ready_on_real_infrastructure(
    infra: object,
    fresh_database: str,
    assert_serves_health: Callable[[web.Application], Awaitable[None]],
) -> None:
    settings = AvailabilitySettings(
        platform=PlatformSettings(kafka_bootstrap=infra.kafka_bootstrap),  # type: ignore[attr-defined]
        http=HttpSettings(port=0),
        database_url=fresh_database,  # type: ignore[arg-type]
    )
    await assert_serves_health(init_app(settings))
