"""``GET /_emulator/openapi.json``: the OpenAPI 3.1 document of the control API.

``control/openapi.json`` is written by hand and covers every ``/_emulator`` route; a test checks
it against the routes registered on the app, so a new route without a spec entry fails.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from aiohttp import web


@functools.cache
def spec_text() -> str:
    return resources.files("msgraph_emulator.control").joinpath("openapi.json").read_text("utf-8")


def spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(spec_text())
    return data


async def openapi(_: web.Request) -> web.Response:
    return web.Response(text=spec_text(), content_type="application/json")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/openapi.json", openapi)
