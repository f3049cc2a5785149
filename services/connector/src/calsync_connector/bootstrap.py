"""Wires the connector service: the one place resources are built and fakes swapped in."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from calsync_common.runtime import outbox_relay_ctx, postgres_ctx, publisher_ctx
from calsync_connector.settings import ConnectorSettings

SERVICE = "connector"
MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


def bootstrap(app: web.Application, settings: ConnectorSettings) -> None:
    """Register every resource the service needs on the app's lifecycle, in order."""
    app.cleanup_ctx.append(postgres_ctx(settings, SERVICE, MIGRATIONS))
    app.cleanup_ctx.append(publisher_ctx(settings, SERVICE))
    app.cleanup_ctx.append(outbox_relay_ctx(settings, SERVICE))
