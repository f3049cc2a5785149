"""The OpenAPI 3.1 document of the availability API, served at ``GET /openapi.json``.

Built once from the path items each API module declares (``PATHS``) and the pydantic models they
name, so a route and its documentation live side by side; a test checks the document is valid
OpenAPI 3.1 and names exactly the routes the app registers.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web

from calsync_availability.entrypoints import bookings_api, calendars_api, operations_api

TITLE = "calsync availability"
VERSION = "1.0.0"


@functools.cache
def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for module in (calendars_api, bookings_api, operations_api):
        for path, item in module.PATHS.items():
            paths.setdefault(path, {}).update(item)
        schemas.update(module.SCHEMAS)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}],
    }


@functools.cache
def document_bytes() -> bytes:
    return json.dumps(document(), sort_keys=True).encode()


async def serve(_: web.Request) -> web.Response:
    return web.Response(body=document_bytes(), content_type="application/json")
