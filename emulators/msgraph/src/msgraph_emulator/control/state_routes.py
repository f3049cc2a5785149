"""``/_emulator`` whole-state routes: reset, dump, load, health of the sandbox."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from msgraph_emulator.appkeys import state_of
from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.seed import dump_state, load_state, reset_state, seed


async def json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise GraphError(400, "BadRequest", "The request body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
    return data


async def reset(request: web.Request) -> web.Response:
    """Empty every part, then re-apply the startup seed unless ``{"seed": false}``."""
    state = state_of(request)
    body = await json_body(request)
    reset_state(state)
    if body.get("seed", True):
        seed(state)
    return web.json_response({"users": len(state.users.all())})


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(dump_state(state_of(request)))


async def put_state(request: web.Request) -> web.Response:
    """Replace the whole state with a document like ``GET /_emulator/state`` returns."""
    state = state_of(request)
    body = await json_body(request)
    reset_state(state)
    try:
        ignored = load_state(state, body)
    except (KeyError, TypeError, ValueError) as exc:
        raise GraphError(400, "BadRequest", f"Invalid state document: {exc}") from exc
    return web.json_response({"loaded": sorted(set(body) - set(ignored)), "ignored": ignored})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_get("/_emulator/state", get_state)
    app.router.add_post("/_emulator/state", put_state)
