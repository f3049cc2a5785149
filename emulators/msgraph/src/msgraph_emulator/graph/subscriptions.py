"""``/v1.0/subscriptions``: create (with validation handshake), list, get, renew, delete,
reauthorize. Needs ``Calendars.Read`` or ``Calendars.ReadWrite`` (event resources)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from msgraph_emulator.graph.auth import TokenContext, authenticate
from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.graph.notifications_engine import NOTIFIER, NotificationEngine
from msgraph_emulator.graph.subscriptions_body import (
    BAD_PAYLOAD,
    bad_request,
    parse_create,
    parse_update,
)
from msgraph_emulator.graph.subscriptions_validation import validate_endpoint
from msgraph_emulator.notify.model import Subscription, parse_resource

SCOPES = ("Calendars.Read", "Calendars.ReadWrite")
MAX_PER_MAILBOX = 1000


def _engine(request: web.Request) -> NotificationEngine:
    return request.app[NOTIFIER]


def _context(request: web.Request) -> TokenContext:
    return authenticate(request, _engine(request).state.signing_key, any_of=SCOPES)


def _odata(request: web.Request, suffix: str) -> str:
    return f"{_engine(request).settings.base_url}/v1.0/$metadata#{suffix}"


def _entity(request: web.Request, sub: Subscription, status: int = 200) -> web.Response:
    body = {"@odata.context": _odata(request, "subscriptions/$entity"), **sub.to_graph()}
    return web.json_response(body, status=status)


def not_found() -> GraphError:
    return GraphError(404, "ResourceNotFound", "The object was not found.")


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(BAD_PAYLOAD) from exc


def _owned(request: web.Request, ctx: TokenContext) -> Subscription:
    sub = _engine(request).store.get(request.match_info["id"])
    if sub is None or sub.application_id != ctx.client_id:
        raise not_found()
    return sub


def _mailbox_owner(engine: NotificationEngine, ctx: TokenContext, user_ref: str | None) -> str:
    if user_ref is None:
        return ctx.user_id
    user = engine.state.users.get(user_ref) or engine.state.users.by_upn(user_ref)
    if user is None:
        raise GraphError(404, "ResourceNotFound", f"User '{user_ref}' was not found.")
    if user.id != ctx.user_id:  # delegated tokens reach only the signed-in user's mailbox
        raise GraphError(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        )
    return user.id


async def create(request: web.Request) -> web.Response:
    engine = _engine(request)
    ctx = _context(request)
    req = parse_create(await _json_body(request), engine.store.clock(), engine.settings)
    scope = parse_resource(req.resource)
    if scope is None:
        raise bad_request(
            "Operation: Create; Exception: [Status Code: BadRequest; "
            f"Reason: The resource '{req.resource}' is not supported for subscriptions.]",
            "ExtensionError",
        )
    user_id = _mailbox_owner(engine, ctx, scope.user_ref)
    if engine.store.count_for_user(user_id) >= MAX_PER_MAILBOX:
        raise GraphError(
            403,
            "ExtensionError",
            "Operation: Create; Exception: [Status Code: Forbidden; Reason: "
            "The number of subscriptions for this mailbox has reached its limit.]",
        )
    session = engine.dispatcher.session
    assert session is not None, "notification engine not started"
    timeout = engine.settings.validation_timeout_s
    await validate_endpoint(session, req.notification_url, timeout, engine.store.deliveries)
    if req.lifecycle_notification_url is not None:
        await validate_endpoint(
            session, req.lifecycle_notification_url, timeout, engine.store.deliveries
        )
    sub = Subscription(
        id=str(uuid.uuid4()),
        resource=req.resource,
        application_id=ctx.client_id,
        change_types=req.change_types,
        notification_url=req.notification_url,
        expiration=req.expiration,
        creator_id=ctx.user_id,
        tenant_id=ctx.tenant_id,
        user_id=user_id,
        calendar_id=scope.calendar_id,
        client_state=req.client_state,
        lifecycle_notification_url=req.lifecycle_notification_url,
        latest_supported_tls_version=req.latest_supported_tls_version,
        include_resource_data=req.include_resource_data,
        encryption_certificate=req.encryption_certificate,
        encryption_certificate_id=req.encryption_certificate_id,
        notification_url_app_id=req.notification_url_app_id,
    )
    engine.store.add(sub)
    return _entity(request, sub, status=201)


async def list_subscriptions(request: web.Request) -> web.Response:
    ctx = _context(request)
    subs = [
        s.to_graph()
        for s in _engine(request).store.for_app(ctx.client_id)
        if s.creator_id == ctx.user_id
    ]
    return web.json_response({"@odata.context": _odata(request, "subscriptions"), "value": subs})


async def get_one(request: web.Request) -> web.Response:
    return _entity(request, _owned(request, _context(request)))


async def update(request: web.Request) -> web.Response:
    engine = _engine(request)
    sub = _owned(request, _context(request))
    req = parse_update(await _json_body(request), engine.store.clock(), engine.settings)
    if req.notification_url is not None and req.notification_url != sub.notification_url:
        session = engine.dispatcher.session
        assert session is not None
        await validate_endpoint(
            session,
            req.notification_url,
            engine.settings.validation_timeout_s,
            engine.store.deliveries,
        )
        sub.notification_url = req.notification_url
    if req.expiration is not None:
        sub.expiration = req.expiration
    engine.reauthorized(sub, renewed=req.expiration is not None)
    return _entity(request, sub)


async def delete(request: web.Request) -> web.Response:
    engine = _engine(request)
    sub = _owned(request, _context(request))
    engine.store.remove(sub.id)
    engine.removed(sub.id)
    return web.Response(status=204)


async def reauthorize(request: web.Request) -> web.Response:
    sub = _owned(request, _context(request))
    _engine(request).reauthorized(sub, renewed=False)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1.0/subscriptions", create)
    app.router.add_get("/v1.0/subscriptions", list_subscriptions)
    app.router.add_get("/v1.0/subscriptions/{id}", get_one)
    app.router.add_patch("/v1.0/subscriptions/{id}", update)
    app.router.add_delete("/v1.0/subscriptions/{id}", delete)
    app.router.add_post("/v1.0/subscriptions/{id}/reauthorize", reauthorize)
