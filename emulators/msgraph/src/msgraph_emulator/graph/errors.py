"""Graph's error body (``{"error": {"code", "message", "innerError"}}``) and its middleware."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.typedefs import Handler


class GraphError(Exception):
    """An error answered the way Microsoft Graph answers it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code: str, message: str, request: web.Request | None = None) -> dict[str, object]:
    client_request_id = request.headers.get("client-request-id") if request else None
    request_id = client_request_id or str(uuid.uuid4())
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": request_id,
            },
        }
    }


def error_response(err: GraphError, request: web.Request | None = None) -> web.Response:
    return web.Response(
        status=err.status,
        text=json.dumps(error_body(err.code, err.message, request)),
        content_type="application/json",
        headers=err.headers,
    )


@web.middleware
async def graph_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render :class:`GraphError` raised by any Graph handler."""
    try:
        return await handler(request)
    except GraphError as err:
        return error_response(err, request)
