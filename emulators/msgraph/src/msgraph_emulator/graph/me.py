"""``GET /v1.0/me``: the signed-in user's profile (Graph ``user`` resource)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from msgraph_emulator.appkeys import base_url, state_of
from msgraph_emulator.graph.auth import authenticate
from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.users import User

READ_SCOPES = ("User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All")


def user_resource(user: User) -> dict[str, Any]:
    given, _, surname = user.display_name.partition(" ")
    return {
        "businessPhones": [],
        "displayName": user.display_name,
        "givenName": given or None,
        "jobTitle": None,
        "mail": user.user_principal_name,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "surname": surname or None,
        "userPrincipalName": user.user_principal_name,
        "id": user.id,
    }


async def get_me(request: web.Request) -> web.Response:
    state = state_of(request)
    ctx = authenticate(request, state.signing_key, any_of=READ_SCOPES)
    user = state.users.get(ctx.user_id)
    if user is None:
        raise GraphError(
            404, "Request_ResourceNotFound", f"Resource '{ctx.user_id}' does not exist."
        )
    resource = user_resource(user)
    context = "users/$entity"
    select = [s.strip() for s in request.query.get("$select", "").split(",") if s.strip()]
    if select:
        resource = {k: v for k, v in resource.items() if k in select or k == "id"}
        context = f"users({','.join(select)})/$entity"
    body = {"@odata.context": f"{base_url(request)}/v1.0/$metadata#{context}", **resource}
    return web.json_response(body)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1.0/me", get_me)
