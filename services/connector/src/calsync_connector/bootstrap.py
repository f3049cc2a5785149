"""Wires the connector: the one place resources are built (and where tests swap them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from calsync_common.contracts.sync_status import CalendarSyncStatus
from calsync_common.contracts.topics import SYNC_STATUS
from calsync_common.http.auth import Authenticator, setup_auth
from calsync_common.kafka.consumer import ConsumedEvent, ConsumerRunner, Message
from calsync_common.postgres.uow import PostgresUnitOfWork
from calsync_common.runtime import (
    POOL,
    CleanupCtx,
    background_ctx,
    catalogue_consumer,
    consumer_ctx,
    outbox_relay_ctx,
    postgres_ctx,
    publisher_ctx,
)
from calsync_connector.adapters.graph import GraphClient
from calsync_connector.adapters.identity import MicrosoftIdentity
from calsync_connector.adapters.repository import Freshness
from calsync_connector.adapters.token_cipher import TokenCipher
from calsync_connector.entrypoints.keys import CONNECT, CONNECTIONS, FRESHNESS, GRAPH, TOKENS
from calsync_connector.service_layer.connect import ConnectConfig, ConnectService
from calsync_connector.service_layer.connections import ConnectionsService
from calsync_connector.service_layer.janitor import Janitor
from calsync_connector.service_layer.tokens import AccessTokens
from calsync_connector.service_layer.unit_of_work import PostgresConnectorWork
from calsync_connector.settings import ConnectorSettings

SERVICE = "connector"
SOURCE = f"/calsync/{SERVICE}"
MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


def utc_now() -> datetime:
    return datetime.now(UTC)


def bootstrap(app: web.Application, settings: ConnectorSettings) -> None:
    """Register every resource the service needs on the app's lifecycle, in order."""
    setup_auth(app, Authenticator(settings.auth))
    app.cleanup_ctx.append(postgres_ctx(settings, SERVICE, MIGRATIONS))
    app.cleanup_ctx.append(publisher_ctx(settings, SERVICE))
    app.cleanup_ctx.append(outbox_relay_ctx(settings, SERVICE))
    app.cleanup_ctx.append(_services_ctx(settings))
    app.cleanup_ctx.append(consumer_ctx(FRESHNESS, _freshness_consumer(settings)))
    app.cleanup_ctx.append(
        background_ctx(
            "connector janitor",
            lambda a: Janitor(
                PostgresUnitOfWork(a[POOL], SOURCE, PostgresConnectorWork),
                settings.janitor,
                utc_now,
            ),
        )
    )


def _services_ctx(settings: ConnectorSettings) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        uow = PostgresUnitOfWork(app[POOL], SOURCE, PostgresConnectorWork)
        identity = MicrosoftIdentity(settings.microsoft)
        cipher = TokenCipher(settings.tokens)
        timeout = aiohttp.ClientTimeout(total=settings.microsoft.timeout_s)
        async with aiohttp.ClientSession(
            timeout=timeout,
            connector=aiohttp.TCPConnector(),
            trust_env=False,
        ) as session:
            graph = GraphClient(settings.microsoft, session)
            app[GRAPH] = graph
            app[CONNECT] = ConnectService(
                uow,
                identity,
                graph,
                cipher,
                ConnectConfig(
                    redirect_uri=settings.redirect_uri,
                    return_url_prefixes=settings.return_url_prefixes,
                    flow_ttl=settings.flow_ttl,
                ),
                utc_now,
            )
            app[CONNECTIONS] = ConnectionsService(uow, utc_now)
            app[TOKENS] = AccessTokens(uow, identity, cipher, utc_now)
            try:
                yield
            finally:
                identity.close()

    return ctx


async def _record_freshness(work: PostgresConnectorWork, message: Message) -> None:
    if not isinstance(message, ConsumedEvent):
        return  # sync-status keys are never erased one by one
    status = message.envelope.data
    if not isinstance(status, CalendarSyncStatus):
        return
    await work.connections.record_freshness(
        status.connection_id,
        Freshness(
            calendar_id=status.calendar_id,
            status=status.status,
            subscription=status.subscription,
            last_synced_at=status.last_synced_at,
            last_error=status.last_error,
            changed_at=status.changed_at,
        ),
    )


def _freshness_consumer(
    settings: ConnectorSettings,
) -> Callable[[web.Application], ConsumerRunner[PostgresConnectorWork]]:
    def make(app: web.Application) -> ConsumerRunner[PostgresConnectorWork]:
        return catalogue_consumer(
            app,
            settings,
            group_id="calsync-connector.sync-status",
            topic=SYNC_STATUS.name,
            handler=_record_freshness,
            bind=PostgresUnitOfWork(app[POOL], SOURCE, PostgresConnectorWork).bind,
        )

    return make
