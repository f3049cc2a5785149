"""Reading events: ``GET .../events`` (single instances, series masters), ``.../events/{id}``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from msgraph_emulator.graph.calendars import calendar_of
from msgraph_emulator.graph.mailbox_http import (
    Caller,
    Prefs,
    caller,
    context_url,
    graph_handler,
    prefs,
    respond,
)
from msgraph_emulator.graph.mailbox_query import expand_ext, page, refuse, select
from msgraph_emulator.mailbox.errors import not_found
from msgraph_emulator.mailbox.render import render_event, render_instance
from msgraph_emulator.mailbox.store import Located


def events_context(request: web.Request, who: Caller, entity: bool = False) -> str:
    cid = request.match_info.get("calendar_id")
    base = f"calendars('{cid}')/events" if cid else "events"
    return context_url(request, who, base + ("/$entity" if entity else ""))


def locate_in_route(who: Caller, request: web.Request) -> Located:
    """The item ``{event_id}`` names, checked against the route's calendar when there is one."""
    found = who.mailbox.locate(request.match_info["event_id"])
    cid = request.match_info.get("calendar_id")
    if cid is not None and found.event.calendar_id != who.mailbox.calendar(cid).id:
        raise not_found()
    who.check_calendar(who.mailbox.calendar(found.event.calendar_id))
    return found


def render_located(found: Located, who: Caller, p: Prefs) -> dict[str, Any]:
    if found.instance is not None:
        return render_instance(found.instance, who.owner, p.view)
    return render_event(found.event, who.owner, p.view)


def read_prefs(request: web.Request) -> Prefs:
    return prefs(request, select=select(request), expand_ext=expand_ext(request))


@graph_handler
async def list_events(request: web.Request) -> web.StreamResponse:
    who = caller(request)
    refuse(request, "$filter", "$orderby", "$search")
    cal = calendar_of(who, request)
    p = read_prefs(request)
    stored = list(who.mailbox.by_calendar.get(cal.id, {}).values())
    chunk, next_link = page(request, p, stored)
    body: dict[str, Any] = {"@odata.context": events_context(request, who)}
    if next_link:
        body["@odata.nextLink"] = next_link
    body["value"] = [render_event(e, who.owner, p.view) for e in chunk]
    return respond(body, applied=p.applied)


@graph_handler
async def get_event(request: web.Request) -> web.StreamResponse:
    who = caller(request)
    found = locate_in_route(who, request)
    p = read_prefs(request)
    body = {"@odata.context": events_context(request, who, entity=True)}
    return respond(body | render_located(found, who, p), applied=p.applied)
