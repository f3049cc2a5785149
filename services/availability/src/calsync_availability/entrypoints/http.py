"""HTTP app factory of the availability service."""

from __future__ import annotations

from aiohttp import web

from calsync_availability.bootstrap import bootstrap
from calsync_availability.entrypoints.routes import setup_routes
from calsync_availability.settings import AvailabilitySettings
from calsync_common.http.auth import Authenticator, setup_auth
from calsync_common.runtime import infrastructure_checks, new_app


def init_app(settings: AvailabilitySettings) -> web.Application:
    app = new_app(infrastructure_checks)
    bootstrap(app, settings)
    setup_auth(app, Authenticator(settings.auth))
    setup_routes(app)
    return app
