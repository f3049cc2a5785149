"""HTTP app factory of the sync-worker service."""

from __future__ import annotations

from aiohttp import web

from calsync_common.runtime import infrastructure_checks, new_app
from calsync_sync_worker.bootstrap import bootstrap
from calsync_sync_worker.settings import SyncWorkerSettings


def init_app(settings: SyncWorkerSettings) -> web.Application:
    app = new_app(infrastructure_checks)
    bootstrap(app, settings)
    return app
