"""Writing events: POST (201, transactionId replay), PATCH, DELETE (204)."""

from __future__ import annotations

from aiohttp import web

from msgraph_emulator.graph.calendars import calendar_of
from msgraph_emulator.graph.events import events_context, locate_in_route, render_located
from msgraph_emulator.graph.mailbox_http import (
    WRITE,
    caller,
    graph_handler,
    prefs,
    read_json,
    respond,
)
from msgraph_emulator.mailbox.parse import parse_event
from msgraph_emulator.mailbox.render import render_event
from msgraph_emulator.mailbox.store import Located
from msgraph_emulator.mailbox.writes import create_event, delete_event, update_event


@graph_handler
async def post_event(request: web.Request) -> web.StreamResponse:
    who = caller(request, WRITE)
    cal = calendar_of(who, request)
    inp = parse_event(await read_json(request))
    event, _ = create_event(who.mailbox, cal, inp, who.mailboxes.emitter(who.mailbox))
    p = prefs(request)
    body = {"@odata.context": events_context(request, who, entity=True)}
    return respond(body | render_event(event, who.owner, p.view), status=201, applied=p.applied)


@graph_handler
async def patch_event(request: web.Request) -> web.StreamResponse:
    who = caller(request, WRITE)
    found = locate_in_route(who, request)
    inp = parse_event(await read_json(request))
    item_id = found.instance.id if found.instance is not None else found.event.id
    update_event(who.mailbox, item_id, inp, who.mailboxes.emitter(who.mailbox))
    p = prefs(request)
    body = {"@odata.context": events_context(request, who, entity=True)}
    return respond(body | render_located(who.mailbox.locate(item_id), who, p), applied=p.applied)


@graph_handler
async def delete_event_route(request: web.Request) -> web.StreamResponse:
    who = caller(request, WRITE)
    found: Located = locate_in_route(who, request)
    item_id = found.instance.id if found.instance is not None else found.event.id
    delete_event(who.mailbox, item_id, who.mailboxes.emitter(who.mailbox))
    return web.Response(status=204)
