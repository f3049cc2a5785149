"""Control API for app registrations, pre-approved sign-ins and single refresh-token families."""

from __future__ import annotations

from typing import Any, get_args

from aiohttp import web

from msgraph_emulator.appkeys import state_of
from msgraph_emulator.control.identity_users import lookup
from msgraph_emulator.control.state_routes import json_body
from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.identity import scopes as scope_rules
from msgraph_emulator.identity.apps import AppRegistration, SignInAudience
from msgraph_emulator.identity.errors import IdentityError


def app_json(app: AppRegistration, *, with_secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "clientId": app.client_id,
        "displayName": app.display_name,
        "redirectUris": app.redirect_uris,
        "signInAudience": app.sign_in_audience,
    }
    if with_secret:
        # Like the portal: the secret value is shown once, at creation.
        out["clientSecret"] = app.secrets[0]
    return out


async def register_app(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await json_body(request)
    uris = body.get("redirectUris", [])
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        raise GraphError(400, "BadRequest", "'redirectUris' must be a list of strings.")
    audience = body.get("signInAudience", "AzureADandPersonalMicrosoftAccount")
    if audience not in get_args(SignInAudience):
        raise GraphError(400, "BadRequest", f"Unknown signInAudience '{audience}'.")
    client_id = body.get("clientId")
    if client_id and state.identity.apps.get(str(client_id)) is not None:
        raise GraphError(409, "Conflict", f"App '{client_id}' already exists.")
    app = state.identity.apps.register(
        display_name=str(body.get("displayName") or "Emulator app"),
        redirect_uris=uris,
        client_id=str(client_id) if client_id else None,
        secret=str(body["clientSecret"]) if body.get("clientSecret") else None,
        sign_in_audience=audience,
        tenant_id=body.get("tenantId"),
    )
    return web.json_response(app_json(app, with_secret=True), status=201)


async def list_apps(request: web.Request) -> web.Response:
    apps = state_of(request).identity.apps.all()
    return web.json_response({"value": [app_json(a) for a in apps]})


async def preapprove(request: web.Request) -> web.Response:
    """After this, authorize with ``login_hint`` = the user's UPN signs in without a page."""
    state = state_of(request)
    body = await json_body(request)
    user = lookup(state, str(body.get("userId", "")))
    client_id = str(body.get("clientId", ""))
    if state.identity.apps.get(client_id) is None:
        raise GraphError(404, "Request_ResourceNotFound", f"App '{client_id}' does not exist.")
    raw = body.get("scopes", [])
    if not isinstance(raw, list):
        raise GraphError(400, "BadRequest", "'scopes' must be a list of strings.")
    try:
        wanted = scope_rules.resource_scopes(scope_rules.parse(" ".join(map(str, raw)), client_id))
    except IdentityError as err:
        raise GraphError(400, "BadRequest", str(err)) from err
    state.identity.preapprove(user.id, client_id, set(wanted))
    return web.json_response({"userId": user.id, "clientId": client_id, "scopes": sorted(wanted)})


async def revoke_refresh_token(request: web.Request) -> web.Response:
    """Revoke one sign-in: the given refresh token and every rotation of it (its family)."""
    body = await json_body(request)
    if not state_of(request).identity.revoke_family(str(body.get("refreshToken", ""))):
        raise GraphError(404, "Request_ResourceNotFound", "Unknown refresh token.")
    return web.json_response({"revoked": True})


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/_emulator/identity/apps", register_app)
    r.add_get("/_emulator/identity/apps", list_apps)
    r.add_post("/_emulator/identity/preapprove", preapprove)
    r.add_post("/_emulator/identity/refresh-tokens/revoke", revoke_refresh_token)
