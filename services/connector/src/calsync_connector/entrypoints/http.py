"""HTTP app factory of the connector service."""

from __future__ import annotations

from aiohttp import web

from calsync_common.http.health import ReadinessCheck
from calsync_common.http.problems import Problem
from calsync_common.runtime import infrastructure_checks, new_app
from calsync_connector.adapters.graph import GraphRefused, GraphUnavailable
from calsync_connector.adapters.identity import IdentityUnavailable
from calsync_connector.bootstrap import bootstrap
from calsync_connector.domain.errors import ConnectorError
from calsync_connector.entrypoints.keys import FRESHNESS
from calsync_connector.entrypoints.routes import setup_routes
from calsync_connector.settings import ConnectorSettings


def _problem(exc: Exception) -> Problem:
    assert isinstance(exc, ConnectorError)
    return Problem(exc.status, exc.code, exc.title, exc.detail)


def _microsoft_unavailable(exc: Exception) -> Problem:
    """Microsoft (Graph or the identity platform) failed or throttled us: try again later."""
    return Problem(
        503,
        "microsoft_unavailable",
        "Microsoft Graph or the identity platform is unavailable; try again later",
        headers={"Retry-After": "30"},
    )


def _microsoft_refused(exc: Exception) -> Problem:
    assert isinstance(exc, GraphRefused)
    return Problem(
        502, "microsoft_refused", "Microsoft Graph refused the request", f"Graph code {exc.code}"
    )


def _checks(app: web.Application) -> dict[str, ReadinessCheck]:
    checks = infrastructure_checks(app)
    if FRESHNESS in app:
        checks["consumer"] = app[FRESHNESS].ready
    return checks


def init_app(settings: ConnectorSettings) -> web.Application:
    app = new_app(
        _checks,
        {
            ConnectorError: _problem,
            GraphUnavailable: _microsoft_unavailable,
            IdentityUnavailable: _microsoft_unavailable,
            GraphRefused: _microsoft_refused,
        },
    )
    bootstrap(app, settings)
    setup_routes(app)
    return app
