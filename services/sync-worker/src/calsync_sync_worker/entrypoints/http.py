"""HTTP app factory of the sync-worker service."""

from __future__ import annotations

from aiohttp import web

from calsync_common.http.health import ReadinessCheck, setup_health_routes
from calsync_common.http.problems import problem_middleware
from calsync_common.postgres.pool import ping
from calsync_common.runtime import POOL, PUBLISHER
from calsync_sync_worker.bootstrap import bootstrap
from calsync_sync_worker.settings import SyncWorkerSettings


def init_app(settings: SyncWorkerSettings) -> web.Application:
    app = web.Application(middlewares=[problem_middleware()])
    bootstrap(app, settings)

    def checks() -> dict[str, ReadinessCheck]:
        return {
            "postgres": lambda: ping(app[POOL]),
            "kafka": lambda: app[PUBLISHER].ready(),
        }

    setup_health_routes(app, checks)
    return app
