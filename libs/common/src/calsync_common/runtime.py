"""Process plumbing shared by the services: typed app keys, resource contexts, ``run``.

Every resource (pool, producer, consumer loop) is opened and closed by ``app.cleanup_ctx``;
nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
from aiohttp import web

from calsync_common.contracts.topics import CATALOGUE
from calsync_common.http.health import ReadinessCheck
from calsync_common.kafka.admin import ensure_topics
from calsync_common.kafka.consumer import ConsumerRunner
from calsync_common.kafka.producer import EventPublisher
from calsync_common.logging import configure_logging
from calsync_common.postgres import migrations
from calsync_common.postgres.pool import open_pool, ping
from calsync_common.settings import ServiceSettings
from calsync_common.telemetry import setup_telemetry

POOL = web.AppKey("pg_pool", asyncpg.Pool)
PUBLISHER = web.AppKey("publisher", EventPublisher)
log = logging.getLogger(__name__)
SHUTDOWN_GRACE_S = 10.0

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


def postgres_ctx(settings: ServiceSettings, service: str, versions_dir: Path) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await migrations.upgrade(settings.dsn, service, versions_dir)
        async with open_pool(settings.dsn) as pool:
            app[POOL] = pool
            yield

    return ctx


def publisher_ctx(settings: ServiceSettings, service: str) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        bootstrap = settings.platform.kafka_bootstrap
        await ensure_topics(
            bootstrap, CATALOGUE, replication=settings.platform.kafka_topic_replication
        )
        publisher = EventPublisher(
            bootstrap, client_id=f"calsync-{service}", source=f"/calsync/{service}"
        )
        await publisher.start()
        app[PUBLISHER] = publisher
        try:
            yield
        finally:
            await publisher.stop()

    return ctx


def infrastructure_checks(app: web.Application) -> dict[str, ReadinessCheck]:
    """Readiness of what every service uses: its database and the Kafka cluster."""
    return {"postgres": lambda: ping(app[POOL]), "kafka": lambda: app[PUBLISHER].ready()}


def consumer_ctx(
    key: web.AppKey[ConsumerRunner], make_runner: Callable[[web.Application], ConsumerRunner]
) -> CleanupCtx:
    """Run a consumer loop for the app's lifetime (stored under ``key`` for readiness checks);
    on shutdown stop polling, let the batch in flight commit, then close."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        runner = make_runner(app)
        app[key] = runner
        await runner.start()
        task = asyncio.create_task(runner.run(), name=f"consumer:{runner.config.group_id}")
        try:
            yield
        finally:
            runner.request_stop()
            # A batch still running after the grace period is cancelled: its transaction rolls
            # back with its offsets, so the next owner of the partition applies it once.
            done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_GRACE_S)
            for finished in done:
                if not finished.cancelled() and finished.exception() is not None:
                    log.error("consumer loop failed", exc_info=finished.exception())
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runner.close()

    return ctx


def run(service: str, settings: ServiceSettings, init_app: Callable[[], web.Application]) -> None:
    configure_logging(service, settings.platform.log_level)
    setup_telemetry(service, settings.platform.otlp_endpoint)
    log.info("starting", extra={"port": settings.http.port, "env": settings.platform.environment})
    web.run_app(
        init_app(), host=settings.http.host, port=settings.http.port, print=None, access_log=None
    )
