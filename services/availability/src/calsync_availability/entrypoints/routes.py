"""Every route of the availability service, registered in one place."""

from __future__ import annotations

from aiohttp import web

from calsync_availability.entrypoints import bookings_api, calendars_api, openapi


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi.serve)
    calendars_api.setup(app)
    bookings_api.setup(app)
