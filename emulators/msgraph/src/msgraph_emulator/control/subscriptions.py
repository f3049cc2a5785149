"""Control API for subscriptions and deliveries (``/_emulator/...``; no auth, sandbox only).

* ``GET /_emulator/subscriptions`` — every subscription, with internal flags.
* ``GET /_emulator/deliveries[?subscriptionId=]`` — POST attempts, dropped and lost items.
* ``POST /_emulator/subscriptions/{id}/remove`` — send ``subscriptionRemoved`` and delete.
* ``POST /_emulator/subscriptions/{id}/missed`` — send ``missed``.
* ``POST /_emulator/subscriptions/{id}/reauthorization-required`` — send it and pause delivery.
* ``POST /_emulator/subscriptions/users/{userId}/revoked`` — as after an admin revocation:
  ``reauthorizationRequired`` for every subscription on the mailbox.
* ``POST /_emulator/subscriptions/sweep`` — run the expiry sweep now.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from msgraph_emulator.graph.notifications_engine import NOTIFIER, NotificationEngine
from msgraph_emulator.notify.model import Subscription, format_utc
from msgraph_emulator.notify.store import LifecycleEvent

ACTIONS: dict[str, LifecycleEvent] = {
    "remove": "subscriptionRemoved",
    "missed": "missed",
    "reauthorization-required": "reauthorizationRequired",
}


def _engine(request: web.Request) -> NotificationEngine:
    return request.app[NOTIFIER]


def _describe(engine: NotificationEngine, sub: Subscription) -> dict[str, Any]:
    return {
        **sub.to_graph(),
        "userId": sub.user_id,
        "calendarId": sub.calendar_id,
        "tenantId": sub.tenant_id,
        "needsReauthorization": sub.needs_reauthorization,
        "heldNotifications": len(engine.held.get(sub.id, ())),
    }


async def list_all(request: web.Request) -> web.Response:
    engine = _engine(request)
    subs = [_describe(engine, s) for s in engine.store.by_id.values()]
    return web.json_response({"value": subs, "now": format_utc(engine.store.clock())})


async def deliveries(request: web.Request) -> web.Response:
    log = _engine(request).store.deliveries
    return web.json_response(log.to_json(request.query.get("subscriptionId")))


async def lifecycle_action(request: web.Request) -> web.Response:
    engine = _engine(request)
    event = ACTIONS.get(request.match_info["action"])
    sub = engine.store.get(request.match_info["id"])
    if event is None or sub is None:
        return web.json_response({"error": "unknown subscription or action"}, status=404)
    engine.store.lifecycle(sub, event)
    return web.json_response({"subscriptionId": sub.id, "lifecycleEvent": event}, status=202)


async def user_revoked(request: web.Request) -> web.Response:
    affected = _engine(request).store.on_user_revoked(request.match_info["user_id"])
    return web.json_response({"subscriptionIds": affected}, status=202)


async def sweep(request: web.Request) -> web.Response:
    engine = _engine(request)
    before = set(engine.store.by_id)
    engine.sweep()
    return web.json_response({"expired": sorted(before - set(engine.store.by_id))})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/subscriptions", list_all)
    app.router.add_get("/_emulator/deliveries", deliveries)
    app.router.add_post("/_emulator/subscriptions/sweep", sweep)
    app.router.add_post("/_emulator/subscriptions/users/{user_id}/revoked", user_revoked)
    app.router.add_post("/_emulator/subscriptions/{id}/{action}", lifecycle_action)
