"""App factory: one aiohttp application serving the identity platform, Graph and the control API."""

from __future__ import annotations

from aiohttp import web

from msgraph_emulator.graph.errors import graph_errors
from msgraph_emulator.settings import EmulatorSettings
from msgraph_emulator.state import EmulatorState

STATE = web.AppKey("state", EmulatorState)


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def init_app(settings: EmulatorSettings, state: EmulatorState | None = None) -> web.Application:
    app = web.Application(middlewares=[graph_errors])
    app[STATE] = state or EmulatorState(settings=settings)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    # Each part registers its routes here (identity, graph calendars, subscriptions, control).
    return app
