"""Process plumbing shared by the services: typed app keys, resource contexts, ``run``.

Every resource (pool, producer, consumer loop) is opened and closed by ``app.cleanup_ctx``;
nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import uvloop
from aiohttp import web

from calsync_common.contracts.topics import CATALOGUE, DEAD_LETTER, Topic
from calsync_common.http.health import ReadinessCheck, setup_health_routes
from calsync_common.http.problems import ProblemMapper, problem_middleware
from calsync_common.kafka.admin import ensure_topics, topics_readiness
from calsync_common.kafka.consumer import ConsumerConfig, ConsumerRunner, Handler
from calsync_common.kafka.consumer_types import BatchHandler, W
from calsync_common.kafka.producer import EventPublisher
from calsync_common.logging import configure_logging
from calsync_common.outbox.relay import OutboxRelay, RelayConfig
from calsync_common.postgres import Connection, migrations
from calsync_common.postgres.pool import open_pool, ping
from calsync_common.settings import ServiceSettings
from calsync_common.telemetry import server_middlewares, setup_telemetry

POOL = web.AppKey("pg_pool", asyncpg.Pool)
PUBLISHER = web.AppKey("publisher", EventPublisher)
RELAY = web.AppKey("outbox_relay", OutboxRelay)
#: What died for good in this process (a crashed loop); non-empty fails /healthz.
FATAL = web.AppKey("fatal", list[str])
#: Set by :func:`run`: a fatal error stops the process, which then exits non-zero.
EXIT_ON_FATAL = web.AppKey("exit_on_fatal", bool)
log = logging.getLogger(__name__)
SHUTDOWN_GRACE_S = 10.0
EXIT_FATAL = 70  # EX_SOFTWARE

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


def postgres_ctx(
    settings: ServiceSettings,
    service: str,
    versions_dir: Path,
    server_settings: Mapping[str, str] | None = None,
) -> CleanupCtx:
    """Migrations (when the settings say so), then the service's pool; ``server_settings`` are
    session parameters of its connections."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await migrations.upgrade(settings.dsn, service, versions_dir)
        async with open_pool(
            settings.dsn, max_size=settings.database_pool_size, server_settings=server_settings
        ) as pool:
            app[POOL] = pool
            yield

    return ctx


def cluster_topics(prefix: str) -> list[Topic]:
    """The catalogue as the cluster names it (``PlatformSettings.topic_prefix``)."""
    return [replace(t, name=f"{prefix}{t.name}") for t in CATALOGUE]


def publisher_ctx(settings: ServiceSettings, service: str) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        bootstrap = settings.platform.kafka_bootstrap
        await ensure_topics(
            bootstrap,
            cluster_topics(settings.platform.topic_prefix),
            replication=settings.platform.kafka_topic_replication,
        )
        publisher = EventPublisher(
            bootstrap,
            client_id=f"calsync-{service}",
            source=f"/calsync/{service}",
            topic_prefix=settings.platform.topic_prefix,
        )
        await publisher.start()
        app[PUBLISHER] = publisher
        try:
            yield
        finally:
            await publisher.stop()

    return ctx


def new_app(
    checks: Callable[[web.Application], dict[str, ReadinessCheck]],
    problems: Mapping[type[Exception], ProblemMapper] | None = None,
) -> web.Application:
    """A service app with the problem+json middleware (``problems`` maps the service's domain
    errors) and the health routes (``checks``: usually :func:`infrastructure_checks` plus the
    service's own)."""
    app = web.Application(middlewares=[*server_middlewares(), problem_middleware(problems)])
    app[FATAL] = []

    def fatal() -> list[str]:
        return app[FATAL]

    setup_health_routes(app, lambda: checks(app), fatal=fatal)
    return app


def infrastructure_checks(app: web.Application) -> dict[str, ReadinessCheck]:
    """Readiness of what every service uses: its database, Kafka and the catalogue's topics, and
    the outbox relay. (Start-up already fails when ``ensure_topics`` cannot create the topics.)"""
    checks: dict[str, ReadinessCheck] = {
        "postgres": lambda: ping(app[POOL]),
        "kafka": lambda: app[PUBLISHER].ready(),
        # Topics deleted or altered after start make the service unready, not silently broken.
        "topics": topics_readiness(
            app[PUBLISHER].bootstrap, cluster_topics(app[PUBLISHER].topic_prefix)
        ),
    }
    if RELAY in app:
        checks["outbox"] = app[RELAY].ready
    return checks


def declare_fatal(app: web.Application, what: str, exc: BaseException) -> None:
    """Something the process cannot live without died: fail /healthz and, under :func:`run`,
    stop the process so that it exits non-zero and its supervisor restarts it."""
    log.critical("fatal failure", extra={"component": what, "error": repr(exc)})
    app[FATAL].append(f"{what}: {type(exc).__name__}")
    if app.get(EXIT_ON_FATAL):
        os.kill(os.getpid(), signal.SIGTERM)  # aiohttp's graceful shutdown, then exit code 70


def _supervise(app: web.Application, task: asyncio.Task[Any], what: str) -> None:
    def done(finished: asyncio.Task[Any]) -> None:
        if not finished.cancelled() and finished.exception() is not None:
            declare_fatal(app, what, finished.exception())  # type: ignore[arg-type]

    task.add_done_callback(done)


async def _stop(task: asyncio.Task[Any]) -> None:
    """Let a loop that was asked to stop finish its batch; cancel it after the grace period.
    A cancelled batch rolls back with its offsets, so the next owner applies it once."""
    done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_GRACE_S)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Background(Protocol):
    """A loop run for the app's lifetime: ``run()`` until ``request_stop()``."""

    async def run(self) -> None: ...

    def request_stop(self) -> None: ...


def background_ctx(what: str, make: Callable[[web.Application], Background]) -> CleanupCtx:
    """Run a loop (a sweeper, a scheduler) for the app's lifetime; its death is fatal."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        loop = make(app)
        task = asyncio.create_task(loop.run(), name=what)
        _supervise(app, task, what)
        try:
            yield
        finally:
            loop.request_stop()
            await _stop(task)

    return ctx


def outbox_relay_ctx(
    settings: ServiceSettings, service: str, config: RelayConfig | None = None
) -> CleanupCtx:
    """Relay the service's outbox for the app's lifetime (after the pool and the publisher)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        relay = OutboxRelay(settings.dsn, app[POOL], app[PUBLISHER], service=service, config=config)
        app[RELAY] = relay
        task = asyncio.create_task(relay.run(), name=f"outbox-relay:{service}")
        _supervise(app, task, "outbox relay")
        try:
            yield
        finally:
            relay.request_stop()
            await _stop(task)

    return ctx


def catalogue_consumer(
    app: web.Application,
    settings: ServiceSettings,
    *,
    group_id: str,
    topic: str,
    handler: Handler[W],
    bind: Callable[[Connection], W],
    after_batch_applied: Callable[[], Awaitable[None]] | None = None,
    batch_handler: BatchHandler[W] | None = None,
    batch_max_records: int | None = None,
) -> ConsumerRunner[W]:
    """A consumer of one catalogue topic, its dead letters on the catalogue's dead-letter topic,
    topics and group under the stack's prefix; on the app's pool and publisher.
    ``batch_max_records`` bounds a fetched run (one transaction), else the runner's default."""
    platform = settings.platform
    config = ConsumerConfig(
        group_id=platform.group(group_id),
        topics=[platform.topic(topic)],
        dead_letter_topic=platform.topic(DEAD_LETTER.name),
    )
    if batch_max_records is not None:
        config = replace(config, batch_max_records=batch_max_records)
    return ConsumerRunner(
        platform.kafka_bootstrap,
        config,
        app[POOL],
        handler,
        app[PUBLISHER],
        bind=bind,
        after_batch_applied=after_batch_applied,
        batch_handler=batch_handler,
    )


def consumer_ctx(
    key: web.AppKey[ConsumerRunner[Any]],
    make_runner: Callable[[web.Application], ConsumerRunner[Any]],
) -> CleanupCtx:
    """Run a consumer loop for the app's lifetime (stored under ``key`` for readiness checks);
    on shutdown stop polling, let the batch in flight commit, then close. A loop that dies is
    fatal for the process (see :func:`declare_fatal`)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        runner = make_runner(app)
        app[key] = runner
        await runner.start()
        task = asyncio.create_task(runner.run(), name=f"consumer:{runner.config.group_id}")
        _supervise(app, task, f"consumer {runner.config.group_id}")
        try:
            yield
        finally:
            runner.request_stop()
            await _stop(task)
            await runner.close()

    return ctx


async def _freeze_heap(app: web.Application) -> None:
    """Move what start-up allocated (modules, schemas, pools: most of the heap, and none of it
    garbage) out of the collector's reach. Each full collection walked all of it: pauses of tens
    of milliseconds that made the busy query's p99 eight times its p50."""
    gc.collect()
    gc.freeze()


def run(
    service: str,
    settings: ServiceSettings,
    init_app: Callable[[], web.Application],
    *,
    untraced_paths: tuple[str, ...] = (),
) -> None:
    configure_logging(service, settings.platform.log_level)
    setup_telemetry(service, settings.platform.otlp_endpoint, untraced_paths=untraced_paths)
    log.info("starting", extra={"port": settings.http.port, "env": settings.platform.environment})
    # uvloop: the asyncio API on libuv, with cheaper sockets and callbacks than the default loop.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = init_app()
    app[EXIT_ON_FATAL] = True
    app.on_startup.append(_freeze_heap)  # after every resource (cleanup_ctx starts first)
    web.run_app(
        app,
        host=settings.http.host,
        port=settings.http.port,
        reuse_port=settings.http.reuse_port or None,
        print=None,
        access_log=None,
    )
    if app.get(FATAL):
        raise SystemExit(EXIT_FATAL)
