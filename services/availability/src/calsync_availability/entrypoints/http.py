"""HTTP app factory of the availability service."""

from __future__ import annotations

from aiohttp import web

from calsync_availability.bootstrap import bootstrap
from calsync_availability.domain.errors import AvailabilityError
from calsync_availability.entrypoints.routes import setup_routes
from calsync_availability.settings import AvailabilitySettings
from calsync_common.http.auth import Authenticator, setup_auth
from calsync_common.http.problems import Problem
from calsync_common.runtime import infrastructure_checks, new_app


def _problem(exc: Exception) -> Problem:
    """Every domain error as problem+json with its stable code (and its extra members)."""
    assert isinstance(exc, AvailabilityError)
    return Problem(exc.status, exc.code, exc.title, exc.detail, **exc.extensions())


def init_app(settings: AvailabilitySettings) -> web.Application:
    app = new_app(infrastructure_checks, {AvailabilityError: _problem})
    bootstrap(app, settings)
    setup_auth(app, Authenticator(settings.auth))
    setup_routes(app)
    return app
