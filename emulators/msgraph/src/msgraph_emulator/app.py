"""App factory: one aiohttp application serving the identity platform, Graph and the control API."""

from __future__ import annotations

import gc

from aiohttp import web

from msgraph_emulator import seed
from msgraph_emulator.appkeys import STATE as STATE
from msgraph_emulator.control import behaviour, identity_apps, identity_users, openapi, state_routes
from msgraph_emulator.graph import me
from msgraph_emulator.graph.errors import graph_errors
from msgraph_emulator.graph.mailbox_routes import setup_mailboxes
from msgraph_emulator.graph.subscriptions_setup import setup_subscriptions
from msgraph_emulator.identity import routes as identity_routes
from msgraph_emulator.metrics import setup_metrics
from msgraph_emulator.settings import EmulatorSettings
from msgraph_emulator.state import EmulatorState


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def init_app(settings: EmulatorSettings, state: EmulatorState | None = None) -> web.Application:
    app = web.Application(middlewares=[graph_errors])
    if state is None:
        state = EmulatorState(settings=settings)
        # A fresh emulator starts with the seed file or the built-in sandbox (see README).
        seed.seed(state)
    app[STATE] = state
    setup_metrics(app, state)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    # Each part registers its routes here (identity, graph calendars, subscriptions, control).
    setup_subscriptions(app, app[STATE])
    setup_mailboxes(app, app[STATE])
    identity_routes.setup_routes(app)
    me.setup_routes(app)
    identity_users.setup_routes(app)
    identity_apps.setup_routes(app)
    state_routes.setup_routes(app)
    behaviour.setup_routes(app)
    openapi.setup_routes(app)
    return app


def freeze_startup_heap() -> None:
    """Exempt everything alive after start-up (modules, routes, the seeded state) from garbage
    collection: a full collection no longer walks a large seeded state each time it runs.

    For long-running processes only (``__main__``, the bench); tests never call it. Objects
    loaded later (``POST /_emulator/state``, reset) are collected as usual; a frozen object is
    still freed by reference counting, only a frozen reference cycle would stay.
    """
    gc.collect()
    gc.freeze()
