"""HTTP app factory of the connector service."""

from __future__ import annotations

from aiohttp import web

from calsync_common.runtime import infrastructure_checks, new_app
from calsync_connector.bootstrap import bootstrap
from calsync_connector.settings import ConnectorSettings


def init_app(settings: ConnectorSettings) -> web.Application:
    app = new_app(infrastructure_checks)
    bootstrap(app, settings)
    return app
