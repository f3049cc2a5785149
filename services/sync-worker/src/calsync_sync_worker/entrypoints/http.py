"""HTTP app factory of the sync-worker service."""

from __future__ import annotations

from aiohttp import web

from calsync_common.http.health import setup_health_routes
from calsync_common.http.problems import problem_middleware
from calsync_common.runtime import infrastructure_checks
from calsync_sync_worker.bootstrap import bootstrap
from calsync_sync_worker.settings import SyncWorkerSettings


def init_app(settings: SyncWorkerSettings) -> web.Application:
    app = web.Application(middlewares=[problem_middleware()])
    bootstrap(app, settings)
    setup_health_routes(app, lambda: infrastructure_checks(app))
    return app
