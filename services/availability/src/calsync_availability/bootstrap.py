"""Wires the availability service: the one place resources are built and fakes swapped in."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from calsync_availability.settings import AvailabilitySettings
from calsync_common.runtime import outbox_relay_ctx, postgres_ctx, publisher_ctx

SERVICE = "availability"
MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


def bootstrap(app: web.Application, settings: AvailabilitySettings) -> None:
    """Register every resource the service needs on the app's lifecycle, in order."""
    app.cleanup_ctx.append(postgres_ctx(settings, SERVICE, MIGRATIONS))
    app.cleanup_ctx.append(publisher_ctx(settings, SERVICE))
    app.cleanup_ctx.append(outbox_relay_ctx(settings, SERVICE))
