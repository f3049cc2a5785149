"""HTTP app factory of the sync-worker service: health, and Microsoft Graph's webhooks."""

from __future__ import annotations

from aiohttp import web

from calsync_common.http.health import ReadinessCheck
from calsync_common.runtime import infrastructure_checks, new_app
from calsync_sync_worker.bootstrap import bootstrap
from calsync_sync_worker.entrypoints.keys import (
    CONNECTIONS_CONSUMER,
    NOTIFICATIONS_CONSUMER,
    WEBHOOKS,
)
from calsync_sync_worker.entrypoints.webhooks import setup_webhook_routes
from calsync_sync_worker.settings import SyncWorkerSettings


def _checks(app: web.Application) -> dict[str, ReadinessCheck]:
    checks = infrastructure_checks(app)
    if CONNECTIONS_CONSUMER in app:
        checks["connections_consumer"] = app[CONNECTIONS_CONSUMER].ready
    if NOTIFICATIONS_CONSUMER in app:
        checks["notifications_consumer"] = app[NOTIFICATIONS_CONSUMER].ready
    return checks


def init_app(settings: SyncWorkerSettings) -> web.Application:
    app = new_app(_checks)
    bootstrap(app, settings)
    setup_webhook_routes(app, lambda: app[WEBHOOKS])
    return app
