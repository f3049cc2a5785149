"""The connector's HTTP API: thin handlers over the service layer; errors are problem+json."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from calsync_common.http import auth
from calsync_common.http.problems import read_body
from calsync_common.transient import TRANSIENT
from calsync_connector.domain.errors import ConnectionNotFound
from calsync_connector.domain.model import Connection
from calsync_connector.entrypoints import openapi
from calsync_connector.entrypoints.keys import CONNECT, CONNECTIONS, GRAPH, TOKENS
from calsync_connector.entrypoints.views import (
    SettingsBody,
    StartConnectBody,
    connection_json,
    etag,
    parse_if_match,
    refresh_json,
)
from calsync_connector.service_layer.connections import ConnectionView

SYNC_WORKER = frozenset({"sync-worker"})


def _sub_account(request: web.Request) -> str:
    sub_account_id = request.match_info["sub_account_id"]
    auth.authorize_sub_account(auth.caller(request), sub_account_id)
    return sub_account_id


def _connection_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["connection_id"])
    except ValueError:
        raise ConnectionNotFound() from None  # not an id of ours: as unknown as any other


def _json(
    view: ConnectionView, *, status: int = 200, extra: dict[str, Any] | None = None
) -> web.Response:
    body = connection_json(view)
    if extra:
        body.update(extra)
    return web.json_response(body, headers={"ETag": etag(view.connection)})


async def start_connect(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    body = await read_body(request, StartConnectBody)
    started = await request.app[CONNECT].start(
        sub_account_id, request.match_info["user_id"], body.return_url
    )
    return web.json_response(
        {
            "authorization_url": started.authorization_url,
            "expires_at": started.expires_at.isoformat(),
        },
        status=201,
        headers={"Cache-Control": "no-store"},
    )


#: The callback's answer to a browser while the database is away: the sign-in is not consumed
#: yet, and Microsoft's code stays redeemable for minutes, so reloading the page finishes it.
RELOAD_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Connecting Outlook</title></head>
<body><h1>Almost there</h1>
<p>Your Microsoft sign-in arrived, but calsync could not finish connecting Outlook just now.
Reload this page in a few seconds to finish; you do not need to sign in again.</p>
</body></html>
"""


async def oauth_callback(request: web.Request) -> web.Response:
    """The redirect URI: Microsoft's answer arrives as a form post (or a query)."""
    params = dict(await request.post()) if request.method == "POST" else dict(request.query)
    try:
        outcome = await request.app[CONNECT].complete({k: str(v) for k, v in params.items()})
    except TRANSIENT:
        if "text/html" not in request.headers.get("Accept", ""):
            raise  # an API client: 503 problem+json, from the middleware
        return web.Response(
            status=503,
            text=RELOAD_PAGE,
            content_type="text/html",
            headers={"Retry-After": "2", "Cache-Control": "no-store"},
        )
    if outcome.connection_id is not None:  # a repair: this process's copies are stale
        request.app[TOKENS].forget(outcome.connection_id)
    return web.Response(
        status=303, headers={"Location": outcome.location, "Cache-Control": "no-store"}
    )


async def list_connections(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    views = await request.app[CONNECTIONS].list(sub_account_id, request.query.get("user_id"))
    return web.json_response({"connections": [connection_json(v) for v in views]})


async def get_connection(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    return _json(await request.app[CONNECTIONS].get(sub_account_id, _connection_id(request)))


async def put_settings(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    connection_id = _connection_id(request)
    body = await read_body(request, SettingsBody)
    service = request.app[CONNECTIONS]
    change = await service.change_settings(
        sub_account_id,
        connection_id,
        body.to_domain(),
        parse_if_match(request.headers.get("If-Match")),
    )
    view = await service.get(sub_account_id, change.connection.id)
    return _json(view, extra={"notes": list(change.notes)})


async def refresh_calendars(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    tokens = request.app[TOKENS]
    graph = request.app[GRAPH]

    async def read(conn: Connection) -> Any:
        token = await tokens.get(conn.id)
        return await graph.calendars(token.token)

    service = request.app[CONNECTIONS]
    refresh = await service.refresh_calendars(sub_account_id, _connection_id(request), read)
    view = await service.get(sub_account_id, refresh.connection.id)
    return web.json_response(refresh_json(view, refresh), headers={"ETag": etag(view.connection)})


async def delete_connection(request: web.Request) -> web.Response:
    sub_account_id = _sub_account(request)
    gone = await request.app[CONNECTIONS].disconnect(sub_account_id, _connection_id(request))
    request.app[TOKENS].forget(gone.id)
    return _json(await request.app[CONNECTIONS].get(sub_account_id, gone.id))


async def access_token(request: web.Request) -> web.Response:
    """Internal: a valid Graph access token for the sync-worker (never logged, never cached)."""
    auth.authorize_service(auth.caller(request), SYNC_WORKER)
    token = await request.app[TOKENS].get(_connection_id(request))
    return web.json_response(
        {"access_token": token.token, "expires_at": token.expires_at.isoformat()},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def setup_routes(app: web.Application) -> None:
    base = "/v1/sub-accounts/{sub_account_id}"
    one = base + "/connections/{connection_id}"
    app.router.add_post(base + "/users/{user_id}/connections/outlook", start_connect)
    app.router.add_get("/oauth/callback", oauth_callback)
    app.router.add_post("/oauth/callback", oauth_callback)
    app.router.add_get(base + "/connections", list_connections)
    app.router.add_get(one, get_connection)
    app.router.add_put(one + "/settings", put_settings)
    app.router.add_post(one + "/calendars:refresh", refresh_calendars)
    app.router.add_delete(one, delete_connection)
    app.router.add_post("/internal/v1/connections/{connection_id}/access-token", access_token)
    app.router.add_get("/openapi.json", openapi.serve)
