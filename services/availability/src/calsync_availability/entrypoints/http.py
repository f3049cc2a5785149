"""HTTP app factory of the availability service."""

from __future__ import annotations

from aiohttp import web

from calsync_availability.bootstrap import bootstrap
from calsync_availability.settings import AvailabilitySettings
from calsync_common.http.health import setup_health_routes
from calsync_common.http.problems import problem_middleware
from calsync_common.runtime import infrastructure_checks


def init_app(settings: AvailabilitySettings) -> web.Application:
    app = web.Application(middlewares=[problem_middleware()])
    bootstrap(app, settings)
    setup_health_routes(app, lambda: infrastructure_checks(app))
    return app
