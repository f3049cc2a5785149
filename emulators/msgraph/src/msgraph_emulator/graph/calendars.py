"""``/me/calendars``, ``/me/calendars/{id}``, ``/me/calendar``."""

from __future__ import annotations

from aiohttp import web

from msgraph_emulator.graph.mailbox_http import (
    Caller,
    caller,
    context_url,
    graph_handler,
    prefs,
    respond,
)
from msgraph_emulator.graph.mailbox_query import page, select
from msgraph_emulator.mailbox.model import Calendar
from msgraph_emulator.mailbox.render import render_calendar


def calendar_of(who: Caller, request: web.Request) -> Calendar:
    """The calendar a route names: ``{calendar_id}`` in the path, else the default one."""
    cid = request.match_info.get("calendar_id")
    return who.mailbox.default_calendar() if cid is None else who.mailbox.calendar(cid)


def _project(item: dict[str, object], fields: frozenset[str] | None) -> dict[str, object]:
    if fields is None:
        return item
    return {k: v for k, v in item.items() if k in fields or k == "id"}


@graph_handler
async def list_calendars(request: web.Request) -> web.StreamResponse:
    who = caller(request)
    p = prefs(request)
    fields = select(request)
    items = [
        _project(render_calendar(c, who.owner), fields) for c in who.mailbox.calendars.values()
    ]
    chunk, next_link = page(request, p, items)
    body: dict[str, object] = {"@odata.context": context_url(request, who.user, "calendars")}
    if next_link:
        body["@odata.nextLink"] = next_link
    body["value"] = chunk
    return respond(body, applied=p.applied)


@graph_handler
async def get_calendar(request: web.Request) -> web.StreamResponse:
    who = caller(request)
    cal = calendar_of(who, request)
    suffix = "calendars/$entity" if "calendar_id" in request.match_info else "calendar/$entity"
    body = {"@odata.context": context_url(request, who.user, suffix)}
    return respond(body | _project(render_calendar(cal, who.owner), select(request)))
