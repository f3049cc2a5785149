"""Control API for sandbox users: create, list, and what Microsoft does behind their back
(revoke sessions, withdraw consent, let refresh tokens go idle)."""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from msgraph_emulator.appkeys import state_of
from msgraph_emulator.control.state_routes import json_body
from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.mailbox.timezones import is_known_zone
from msgraph_emulator.state import EmulatorState
from msgraph_emulator.users import PERSONAL_TENANT_ID, User


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "tenantId": user.tenant_id,
        "kind": "personal" if user.is_personal else "work",
        "userPrincipalName": user.user_principal_name,
        "displayName": user.display_name,
        "timeZone": user.time_zone,
    }


def _personal_oid() -> str:
    # MSA object ids are a zero-padded 64-bit CID: 00000000-0000-0000-xxxx-xxxxxxxxxxxx.
    cid = secrets.token_hex(8)
    return f"00000000-0000-0000-{cid[:4]}-{cid[4:]}"


def _required(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise GraphError(400, "BadRequest", f"'{name}' is required (a non-empty string).")
    return value.strip()


def lookup(state: EmulatorState, login: str) -> User:
    user = state.users.get(login) or state.users.by_upn(login)
    if user is None:
        raise GraphError(404, "Request_ResourceNotFound", f"User '{login}' does not exist.")
    return user


async def create_user(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await json_body(request)
    kind = body.get("kind", "work")
    if kind not in ("work", "personal"):
        raise GraphError(400, "BadRequest", "'kind' must be 'work' or 'personal'.")
    upn = _required(body, "userPrincipalName")
    if state.users.by_upn(upn) is not None:
        raise GraphError(409, "Conflict", f"A user with UPN '{upn}' already exists.")
    if kind == "personal":
        tenant_id = PERSONAL_TENANT_ID
    else:
        tenant_id = str(body.get("tenantId") or uuid.uuid4())
        if tenant_id == PERSONAL_TENANT_ID:
            raise GraphError(400, "BadRequest", "Work users cannot live in the MSA tenant.")
    time_zone = str(body.get("timeZone") or "UTC")
    if not is_known_zone(time_zone):  # Windows or IANA name, stored as sent (Outlook does)
        raise GraphError(400, "BadRequest", f"Unknown time zone '{time_zone}'.")
    user = User(
        id=str(body.get("id") or (_personal_oid() if kind == "personal" else uuid.uuid4())),
        tenant_id=tenant_id,
        user_principal_name=upn,
        display_name=str(body.get("displayName") or upn.partition("@")[0]),
        time_zone=time_zone,
    )
    if state.users.get(user.id) is not None:
        raise GraphError(409, "Conflict", f"A user with id '{user.id}' already exists.")
    state.users.add(user)
    return web.json_response(user_json(user), status=201)


async def list_users(request: web.Request) -> web.Response:
    return web.json_response({"value": [user_json(u) for u in state_of(request).users.all()]})


async def get_user(request: web.Request) -> web.Response:
    return web.json_response(user_json(lookup(state_of(request), request.match_info["user"])))


async def revoke_sessions(request: web.Request) -> web.Response:
    """Like Graph's ``revokeSignInSessions``: refresh tokens issued before now stop working."""
    state = state_of(request)
    user = lookup(state, request.match_info["user"])
    now = time.time()
    state.identity.revoke_user(user.id, now)
    # Graph then asks every subscription on the mailbox to reauthorize (lifecycle notification).
    affected = state.subscriptions.on_user_revoked(user.id)
    return web.json_response(
        {
            "tokensValidFrom": datetime.fromtimestamp(now, UTC).isoformat(),
            "reauthorizationRequired": affected,
        }
    )


async def age_tokens(request: web.Request) -> web.Response:
    """Make the user's refresh tokens look idle for ``days`` (default: one past the limit)."""
    state = state_of(request)
    user = lookup(state, request.match_info["user"])
    body = await json_body(request)
    days = body.get("days", state.settings.refresh_token_inactivity_days + 1)
    if not isinstance(days, int | float) or days < 0:
        raise GraphError(400, "BadRequest", "'days' must be a non-negative number.")
    return web.json_response({"aged": state.identity.age_user_tokens(user.id, float(days))})


async def list_consents(request: web.Request) -> web.Response:
    state = state_of(request)
    user = lookup(state, request.match_info["user"])
    value = [
        {"clientId": client, "scopes": sorted(scopes)}
        for (uid, client), scopes in state.identity.consents.items()
        if uid == user.id
    ]
    return web.json_response({"value": value})


async def withdraw_consent(request: web.Request) -> web.Response:
    """The user removes the app's permissions (one app, or all with no ``client`` segment).

    That app's subscriptions on the mailbox (every app's, without ``client``) get
    ``reauthorizationRequired``, as after an admin revokes permissions.
    """
    state = state_of(request)
    user = lookup(state, request.match_info["user"])
    client_id = request.match_info.get("client")
    removed = state.identity.withdraw_consent(user.id, client_id)
    affected = state.subscriptions.on_user_revoked(user.id, client_id)
    return web.json_response({"withdrawn": removed, "reauthorizationRequired": affected})


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/_emulator/users", create_user)
    r.add_get("/_emulator/users", list_users)
    r.add_get("/_emulator/users/{user}", get_user)
    r.add_post("/_emulator/users/{user}/revoke-sessions", revoke_sessions)
    r.add_post("/_emulator/users/{user}/age-refresh-tokens", age_tokens)
    r.add_get("/_emulator/users/{user}/consents", list_consents)
    r.add_delete("/_emulator/users/{user}/consents", withdraw_consent)
    r.add_delete("/_emulator/users/{user}/consents/{client}", withdraw_consent)
