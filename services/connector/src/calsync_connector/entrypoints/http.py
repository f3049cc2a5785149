"""HTTP app factory of the connector service."""

from __future__ import annotations

from aiohttp import web

from calsync_common.http.health import ReadinessCheck, setup_health_routes
from calsync_common.http.problems import problem_middleware
from calsync_common.postgres.pool import ping
from calsync_common.runtime import POOL, PUBLISHER
from calsync_connector.bootstrap import bootstrap
from calsync_connector.settings import ConnectorSettings


def init_app(settings: ConnectorSettings) -> web.Application:
    app = web.Application(middlewares=[problem_middleware()])
    bootstrap(app, settings)

    def checks() -> dict[str, ReadinessCheck]:
        return {
            "postgres": lambda: ping(app[POOL]),
            "kafka": lambda: app[PUBLISHER].ready(),
        }

    setup_health_routes(app, checks)
    return app
