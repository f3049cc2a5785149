"""Control API for calendars and events (emulator only, JSON, no auth) under ``/_emulator``.

Changes made here are "the user in Outlook": same validation as Graph, same change log (delta)
and change notifications, but read-only shared calendars can be written (their owner changes
them) and Outlook-only fields (isOrganizer, organizer, responseStatus, isCancelled) are settable.
Calendars can be changed as their owner or an admin would: a share made read-only or writable
(``access``), renamed, or removed (``mailbox/calendar_edits.py`` has the rules).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.graph.mailbox_http import EMU, graph_handler, read_json, respond
from msgraph_emulator.mailbox.calendar_edits import (
    ACCESS,
    parse_calendar_patch,
    update_calendar,
)
from msgraph_emulator.mailbox.model import Calendar
from msgraph_emulator.mailbox.parse import parse_event
from msgraph_emulator.mailbox.render import (
    Owner,
    View,
    render_calendar,
    render_event,
    render_instance,
)
from msgraph_emulator.mailbox.store import Mailbox
from msgraph_emulator.mailbox.writes import create_event, delete_event, update_event
from msgraph_emulator.state import EmulatorState


def _mailbox(request: web.Request) -> tuple[EmulatorState, Mailbox, Owner]:
    state = request.app[EMU]
    user = state.users.get(request.match_info["user_id"])
    if user is None:
        raise GraphError(404, "ErrorItemNotFound", "No such user in the emulator.")
    owner = Owner(user.display_name, user.user_principal_name, user.is_personal)
    return state, state.mailboxes.ensure(user), owner


def _calendar(mb: Mailbox, cid: str) -> Calendar:
    return mb.default_calendar() if cid == "default" else mb.calendar(cid)


def _calendar_json(cal: Calendar, owner: Owner) -> dict[str, Any]:
    return render_calendar(cal, owner) | {"access": cal.access}


@graph_handler
async def list_calendars(request: web.Request) -> web.StreamResponse:
    _, mb, owner = _mailbox(request)
    return respond({"value": [_calendar_json(c, owner) for c in mb.calendars.values()]})


@graph_handler
async def create_calendar(request: web.Request) -> web.StreamResponse:
    """``{"name", "access": "owner"|"read"|"write", "owner": {"name", "address"}, "color"}``."""
    state, mb, owner = _mailbox(request)
    body = await read_json(request)
    access = body.get("access", "owner")
    if access not in ACCESS or not body.get("name"):
        raise GraphError(400, "ErrorInvalidRequest", "name and access (owner|read|write) needed.")
    sharer = body.get("owner") or {}
    if access != "owner" and not sharer.get("address"):
        raise GraphError(400, "ErrorInvalidRequest", "A shared calendar needs owner.address.")
    cal = state.mailboxes.add_calendar(
        mb,
        str(body["name"]),
        str(sharer.get("name") or owner.name),
        str(sharer.get("address") or owner.address),
        access,
        str(body.get("color") or "auto"),
    )
    return respond(_calendar_json(cal, owner), status=201)


@graph_handler
async def update_calendar_route(request: web.Request) -> web.StreamResponse:
    """``{"access": "owner"|"read"|"write", "name", "color", "isDefaultCalendar"}``, any subset.

    ``access`` changes a share (read-only ↔ writable); an own calendar stays ``owner``."""
    _, mb, owner = _mailbox(request)
    cal = _calendar(mb, request.match_info["calendar_id"])
    update_calendar(mb, cal, parse_calendar_patch(await read_json(request), control=True))
    return respond(_calendar_json(cal, owner))


@graph_handler
async def delete_calendar_route(request: web.Request) -> web.StreamResponse:
    """Delete an own calendar with its events, or withdraw a share; never the default one."""
    state, mb, _ = _mailbox(request)
    cal = _calendar(mb, request.match_info["calendar_id"])
    state.mailboxes.remove_calendar(mb, cal)
    return web.Response(status=204)


@graph_handler
async def create_event_route(request: web.Request) -> web.StreamResponse:
    state, mb, owner = _mailbox(request)
    cal = _calendar(mb, request.match_info["calendar_id"])
    inp = parse_event(await read_json(request), control=True)
    event, _ = create_event(mb, cal, inp, state.mailboxes.emitter(mb), control=True)
    return respond(render_event(event, owner, View()), status=201)


@graph_handler
async def update_event_route(request: web.Request) -> web.StreamResponse:
    state, mb, owner = _mailbox(request)
    inp = parse_event(await read_json(request), control=True)
    event_id = request.match_info["event_id"]
    update_event(mb, event_id, inp, state.mailboxes.emitter(mb), control=True)
    found = mb.locate(event_id)
    if found.instance is not None:
        return respond(render_instance(found.instance, owner, View()))
    return respond(render_event(found.event, owner, View()))


@graph_handler
async def delete_event_route(request: web.Request) -> web.StreamResponse:
    state, mb, _ = _mailbox(request)
    delete_event(mb, request.match_info["event_id"], state.mailboxes.emitter(mb), control=True)
    return web.Response(status=204)


@graph_handler
async def expire_delta(request: web.Request) -> web.StreamResponse:
    """``{"calendarId": optional}``: the next use of those delta/skip tokens answers 410."""
    state, mb, _ = _mailbox(request)
    body = await read_json(request) if request.can_read_body else {}
    cid = body.get("calendarId")
    if cid is not None:
        cid = _calendar(mb, str(cid)).id
    expired = state.mailboxes.delta.expire(mb.user_id, cid)
    return respond({"expired": expired})


def setup_control_mailboxes(app: web.Application) -> None:
    base = "/_emulator/users/{user_id}"
    app.router.add_get(f"{base}/calendars", list_calendars)
    app.router.add_post(f"{base}/calendars", create_calendar)
    app.router.add_patch(f"{base}/calendars/{{calendar_id}}", update_calendar_route)
    app.router.add_delete(f"{base}/calendars/{{calendar_id}}", delete_calendar_route)
    app.router.add_post(f"{base}/calendars/{{calendar_id}}/events", create_event_route)
    app.router.add_patch(f"{base}/events/{{event_id}}", update_event_route)
    app.router.add_delete(f"{base}/events/{{event_id}}", delete_event_route)
    app.router.add_post(f"{base}/delta/expire", expire_delta)
