"""HTTP app factory of the connector service."""

from __future__ import annotations

from aiohttp import web

from calsync_common.http.health import setup_health_routes
from calsync_common.http.problems import problem_middleware
from calsync_common.runtime import infrastructure_checks
from calsync_connector.bootstrap import bootstrap
from calsync_connector.settings import ConnectorSettings


def init_app(settings: ConnectorSettings) -> web.Application:
    app = web.Application(middlewares=[problem_middleware()])
    bootstrap(app, settings)
    setup_health_routes(app, lambda: infrastructure_checks(app))
    return app
