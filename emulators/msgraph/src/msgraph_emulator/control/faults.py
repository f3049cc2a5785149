"""Control API for injected faults (``/_emulator/faults``).

* ``GET /_emulator/faults`` — ``{"global": {...}, "users": {userId: {...}}}``.
* ``PUT /_emulator/faults`` — replace the global configuration (JSON body, fields of
  :class:`~msgraph_emulator.notify.faults.FaultConfig`; omitted fields take defaults).
* ``PUT /_emulator/faults/users/{userId}`` — configuration for one mailbox (replaces the global).
* ``DELETE /_emulator/faults[/users/{userId}]`` — back to defaults.
* ``POST /_emulator/faults/throttling/reset`` — forget concurrency and 10-minute counters.
"""

from __future__ import annotations

from aiohttp import web

from msgraph_emulator.graph.notifications_engine import NOTIFIER
from msgraph_emulator.notify.faults import FaultConfig, FaultRegistry


def _faults(request: web.Request) -> FaultRegistry:
    return request.app[NOTIFIER].store.faults


async def show(request: web.Request) -> web.Response:
    return web.json_response(_faults(request).dump())


async def put(request: web.Request) -> web.Response:
    try:
        data = await request.json()
        config = FaultConfig.from_json(data if isinstance(data, dict) else {"_": data})
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        return web.json_response({"error": str(exc)}, status=400)
    _faults(request).set(config, request.match_info.get("user_id"))
    return web.json_response(config.dump())


async def clear(request: web.Request) -> web.Response:
    _faults(request).clear(request.match_info.get("user_id"))
    return web.Response(status=204)


async def reset_throttling(request: web.Request) -> web.Response:
    request.app[NOTIFIER].store.limiter.reset()
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/faults", show)
    app.router.add_put("/_emulator/faults", put)
    app.router.add_delete("/_emulator/faults", clear)
    app.router.add_put("/_emulator/faults/users/{user_id}", put)
    app.router.add_delete("/_emulator/faults/users/{user_id}", clear)
    app.router.add_post("/_emulator/faults/throttling/reset", reset_throttling)
