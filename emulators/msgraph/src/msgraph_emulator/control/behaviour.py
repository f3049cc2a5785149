"""Control API for switchable Graph behaviours (``/_emulator/behaviour``).

* ``GET /_emulator/behaviour`` — the current switches, e.g.
  ``{"cancelledOccurrencesInDelta": "removed"}``.
* ``PUT /_emulator/behaviour`` — replace them (omitted fields take defaults); 400 with
  ``{"error": text}`` for an unknown field or value. ``POST /_emulator/reset`` restores defaults.
"""

from __future__ import annotations

from aiohttp import web

from msgraph_emulator.appkeys import state_of


async def show(request: web.Request) -> web.Response:
    return web.json_response(state_of(request).behaviour.dump())


async def put(request: web.Request) -> web.Response:
    behaviour = state_of(request).behaviour
    try:
        behaviour.load(await request.json())
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(behaviour.dump())


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/behaviour", show)
    app.router.add_put("/_emulator/behaviour", put)
