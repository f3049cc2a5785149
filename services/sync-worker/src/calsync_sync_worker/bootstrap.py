"""Wires the sync-worker service: the one place resources are built and fakes swapped in."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from calsync_common.contracts.topics import BOOKINGS, CONNECTIONS, GRAPH_NOTIFICATIONS
from calsync_common.kafka.consumer import ConsumerRunner
from calsync_common.postgres.uow import PostgresUnitOfWork
from calsync_common.runtime import (
    POOL,
    PUBLISHER,
    CleanupCtx,
    background_ctx,
    catalogue_consumer,
    consumer_ctx,
    outbox_relay_ctx,
    postgres_ctx,
    publisher_ctx,
)
from calsync_sync_worker.adapters.graph_client import open_graph_client
from calsync_sync_worker.entrypoints.keys import (
    CONNECTIONS_CONSUMER,
    DELTA,
    GRAPH,
    NOTIFICATIONS_CONSUMER,
    SUBSCRIPTIONS,
    WEBHOOKS,
    WRITE_BACK,
    WRITE_BACK_CONSUMER,
)
from calsync_sync_worker.entrypoints.webhooks import GraphWebhooks, SubscriptionTargets
from calsync_sync_worker.service_layer.connections import on_connection
from calsync_sync_worker.service_layer.delta import DeltaRunner
from calsync_sync_worker.service_layer.notifications import (
    on_notification,
    on_notifications,
    take_subscription_work,
)
from calsync_sync_worker.service_layer.subscriptions import SubscriptionManager, WebhookUrls
from calsync_sync_worker.service_layer.unit_of_work import SyncWork
from calsync_sync_worker.service_layer.write_back import WriteBackRunner, on_booking
from calsync_sync_worker.settings import SyncWorkerSettings

SERVICE = "sync-worker"
SOURCE = f"/calsync/{SERVICE}"
MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


def replica_id() -> str:
    """Who holds a lease: unique per process (several replicas share one database)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _wake_now(app: web.Application, *loops: web.AppKey[Any]) -> None:
    """Wake the background loops that exist yet (they start in bootstrap's order)."""
    for key in loops:
        loop = app.get(key)
        if loop is not None:
            loop.wake()


async def _wake(app: web.Application, *loops: web.AppKey[Any]) -> None:
    """:func:`_wake_now` as a consumer's after-commit hook: a connection snapshot plans
    subscriptions, delta rounds and write-backs, whose loops then look at once."""
    _wake_now(app, *loops)


def bootstrap(app: web.Application, settings: SyncWorkerSettings) -> None:
    """Register every resource the service needs on the app's lifecycle, in order."""
    app.cleanup_ctx.append(postgres_ctx(settings, SERVICE, MIGRATIONS))
    app.cleanup_ctx.append(publisher_ctx(settings, SERVICE))
    app.cleanup_ctx.append(outbox_relay_ctx(settings, SERVICE))
    app.cleanup_ctx.append(_webhooks_ctx(settings))

    def connections_runner(a: web.Application) -> ConsumerRunner[SyncWork]:
        return catalogue_consumer(
            a,
            settings,
            group_id="calsync-sync-worker.connections",
            topic=CONNECTIONS.name,
            handler=on_connection,
            bind=PostgresUnitOfWork(a[POOL], SOURCE, SyncWork).bind,
            after_batch_applied=lambda: _wake(a, SUBSCRIPTIONS, DELTA, WRITE_BACK),
        )

    app.cleanup_ctx.append(consumer_ctx(CONNECTIONS_CONSUMER, connections_runner))
    app.cleanup_ctx.append(_graph_ctx(settings))

    def subscriptions(a: web.Application) -> SubscriptionManager:
        notifications, lifecycle = settings.webhook_urls
        manager = SubscriptionManager(
            PostgresUnitOfWork(a[POOL], SOURCE, SyncWork),
            a[GRAPH],
            WebhookUrls(notifications, lifecycle),
            utc_now,
            owner=replica_id(),
            every_s=settings.subscriptions_every_s,
            lease_s=settings.subscriptions_lease_s,
            rounds_due=lambda: _wake_now(a, DELTA),
        )
        a[SUBSCRIPTIONS] = manager
        return manager

    app.cleanup_ctx.append(background_ctx("subscription upkeep", subscriptions))

    def delta(a: web.Application) -> DeltaRunner:
        runner = DeltaRunner(
            PostgresUnitOfWork(a[POOL], SOURCE, SyncWork),
            a[GRAPH],
            utc_now,
            owner=replica_id(),
            config=settings.delta,
        )
        a[DELTA] = runner
        return runner

    app.cleanup_ctx.append(background_ctx("delta rounds", delta))

    def notifications_runner(a: web.Application) -> ConsumerRunner[SyncWork]:
        async def wake_after_commit() -> None:  # the rounds made due are committed now
            a[DELTA].wake()
            if take_subscription_work():
                a[SUBSCRIPTIONS].wake()

        return catalogue_consumer(
            a,
            settings,
            group_id="calsync-sync-worker.notifications",
            topic=GRAPH_NOTIFICATIONS.name,
            handler=on_notification,
            batch_handler=on_notifications,
            bind=PostgresUnitOfWork(a[POOL], SOURCE, SyncWork).bind,
            after_batch_applied=wake_after_commit,
        )

    app.cleanup_ctx.append(consumer_ctx(NOTIFICATIONS_CONSUMER, notifications_runner))

    def write_back(a: web.Application) -> WriteBackRunner:
        runner = WriteBackRunner(
            PostgresUnitOfWork(a[POOL], SOURCE, SyncWork),
            a[GRAPH],
            utc_now,
            owner=replica_id(),
            config=settings.write_back,
        )
        a[WRITE_BACK] = runner
        return runner

    app.cleanup_ctx.append(background_ctx("write-back", write_back))

    def bookings_runner(a: web.Application) -> ConsumerRunner[SyncWork]:
        async def wake_after_commit() -> None:  # the writes made due are committed now
            a[WRITE_BACK].wake()

        return catalogue_consumer(
            a,
            settings,
            group_id="calsync-sync-worker.bookings",
            topic=BOOKINGS.name,
            handler=on_booking,
            bind=PostgresUnitOfWork(a[POOL], SOURCE, SyncWork).bind,
            after_batch_applied=wake_after_commit,
        )

    app.cleanup_ctx.append(consumer_ctx(WRITE_BACK_CONSUMER, bookings_runner))


def utc_now() -> datetime:
    return datetime.now(UTC)


def _graph_ctx(settings: SyncWorkerSettings) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_graph_client(settings.graph) as graph:
            app[GRAPH] = graph
            yield

    return ctx


def _webhooks_ctx(settings: SyncWorkerSettings) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[WEBHOOKS] = GraphWebhooks(
            SubscriptionTargets(app[POOL]),
            app[PUBLISHER],
            ack_timeout_s=settings.webhook_ack_timeout_s,
        )
        yield

    return ctx
