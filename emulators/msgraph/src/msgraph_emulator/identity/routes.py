"""aiohttp handlers of the identity platform endpoints (rules live in the sibling modules)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from urllib.parse import urlencode

from aiohttp import web

from msgraph_emulator.appkeys import base_url, state_of
from msgraph_emulator.identity import authorize as az
from msgraph_emulator.identity import discovery, grants, pages, tenants
from msgraph_emulator.identity.aadsts import missing_parameter, unsupported_grant
from msgraph_emulator.identity.errors import IdentityError, Trace, description, token_error_body
from msgraph_emulator.identity.tokens import Issued, token_response

log = logging.getLogger(__name__)
NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def _trace(request: web.Request) -> Trace:
    return Trace.new(request.headers.get("client-request-id"))


async def openid_configuration(request: web.Request) -> web.Response:
    state = state_of(request)
    try:
        authority = tenants.resolve(request.match_info["tenant"], state.users)
    except IdentityError as err:
        body = token_error_body(err, _trace(request), base_url(request))
        return web.json_response(body, status=400)
    return web.json_response(discovery.openid_configuration(base_url(request), authority))


async def keys(request: web.Request) -> web.Response:
    return web.json_response(discovery.jwks(state_of(request).signing_key, base_url(request)))


async def instance_discovery(request: web.Request) -> web.Response:
    body = discovery.instance_discovery(
        base_url(request), request.query.get("authorization_endpoint")
    )
    return web.json_response(body, status=400 if "error" in body else 200)


async def error_help(request: web.Request) -> web.Response:
    code = request.query.get("code", "")
    return web.Response(
        text=pages.error_page(f"AADSTS{code}: see the emulator README for this error."),
        content_type="text/html",
    )


def _redirect(target: az.RedirectTarget, values: Mapping[str, str]) -> web.Response:
    if target.response_mode == "form_post":
        return web.Response(
            text=pages.form_post_page(target.redirect_uri, values), content_type="text/html"
        )
    sep = (
        "#" if target.response_mode == "fragment" else ("&" if "?" in target.redirect_uri else "?")
    )
    raise web.HTTPFound(f"{target.redirect_uri}{sep}{urlencode(values)}")


async def authorize(request: web.Request) -> web.Response:
    state = state_of(request)
    params = {k: str(v) for k, v in request.query.items()}
    if request.method == "POST":
        params.update({k: str(v) for k, v in (await request.post()).items()})
    trace = _trace(request)
    try:
        req = az.parse_request(request.match_info["tenant"], params, state.identity, state.users)
        if params.get(pages.ACTION_FIELD) == "cancel":
            return _redirect(req.target, az.decline(req))
        user = az.automatic_user(req, params, state.identity, state.users)
        if user is None:
            page = pages.consent_page(
                action=request.path,
                app_name=req.app.display_name,
                params=params,
                users=[u for u in state.users.all() if req.authority.allows(u)],
                wanted=req.scopes,
            )
            return web.Response(text=page, content_type="text/html")
        values = az.approve(
            req,
            user,
            state.identity,
            now=time.time(),
            code_lifetime_s=state.settings.auth_code_lifetime_s,
        )
        log.info("authorize.code_issued", extra={"client_id": req.app.client_id, "user": user.id})
        return _redirect(req.target, values)
    except az.AuthorizeFailure as failure:
        err = failure.error
        log.info("authorize.error", extra={"code": err.code, "error": err.error})
        if failure.target is None:
            return web.Response(
                status=400, text=pages.error_page(description(err, trace)), content_type="text/html"
            )
        return _redirect(
            failure.target,
            failure.target.params(
                {"error": err.error, "error_description": description(err, trace)}
            ),
        )


def _grant(form: Mapping[str, str], request: web.Request) -> Issued:
    state = state_of(request)
    segment = request.match_info["tenant"]
    authority = tenants.resolve(segment, state.users)
    client_id, secret = grants.client_credentials(form, request.headers.get("Authorization"))
    app = grants.authenticate_client(client_id, secret, state.identity, segment)
    ctx = grants.GrantContext(
        store=state.identity,
        users=state.users,
        authority=authority,
        now=time.time(),
        inactivity_days=state.settings.refresh_token_inactivity_days,
    )
    grant_type = form.get("grant_type")
    if not grant_type:
        raise missing_parameter("grant_type")
    if grant_type == "authorization_code":
        return grants.redeem_code(form, app, ctx)
    if grant_type == "refresh_token":
        return grants.redeem_refresh_token(form, app, ctx)
    raise unsupported_grant(grant_type)


async def token(request: web.Request) -> web.Response:
    state = state_of(request)
    form = {k: str(v) for k, v in (await request.post()).items()}
    try:
        issued = _grant(form, request)
    except IdentityError as err:
        log.info("token.error", extra={"code": err.code, "grant_type": form.get("grant_type")})
        body = token_error_body(err, _trace(request), base_url(request))
        return web.json_response(body, status=err.status, headers=NO_STORE)
    body = token_response(
        issued,
        key=state.signing_key,
        issuer_base=base_url(request),
        lifetime_s=state.settings.access_token_lifetime_s,
        now=int(time.time()),
    )
    log.info("token.issued", extra={"client_id": issued.client_id, "user": issued.user.id})
    return web.json_response(body, headers=NO_STORE)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/common/discovery/instance", instance_discovery)
    app.router.add_get("/error", error_help)
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration)
    app.router.add_get("/{tenant}/discovery/v2.0/keys", keys)
    app.router.add_route("GET", "/{tenant}/oauth2/v2.0/authorize", authorize)
    app.router.add_route("POST", "/{tenant}/oauth2/v2.0/authorize", authorize)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token)
