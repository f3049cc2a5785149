"""The OpenAPI 3.1 document of the connector's HTTP API, served at ``GET /openapi.json``.

The document is ``openapi.json`` beside this module, shipped inside the package and served
byte for byte; tests check it is valid and that it names exactly the routes the app registers.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from aiohttp import web

DOCUMENT = "openapi.json"


@functools.cache
def document_bytes() -> bytes:
    """The document as shipped (read once, on first use: never at import time)."""
    return resources.files(__package__).joinpath(DOCUMENT).read_bytes()


def load() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(document_bytes())
    return document


async def serve(_: web.Request) -> web.Response:
    return web.Response(body=document_bytes(), content_type="application/json")
