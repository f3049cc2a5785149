"""``{user}/calendars``, ``{user}/calendars/{id}``, ``{user}/calendar`` (``{user}``: ``/me`` or
``/users/{id|upn}``; a delegate sees the owner's default calendar only): GET, PATCH (name, color,
isDefaultCalendar) and DELETE (not the default calendar); rules in ``mailbox/calendar_edits.py``.

*Decision:* a delegate may read the owner's default calendar and, with a writable share, write
its events, but not rename, recolour or delete it (that takes the owner's own rights): 403.
"""

from __future__ import annotations

from aiohttp import web

from msgraph_emulator.graph.mailbox_http import (
    WRITE,
    Caller,
    caller,
    context_url,
    graph_handler,
    prefs,
    read_json,
    respond,
)
from msgraph_emulator.graph.mailbox_query import page, select
from msgraph_emulator.mailbox.calendar_edits import parse_calendar_patch, update_calendar
from msgraph_emulator.mailbox.errors import access_denied
from msgraph_emulator.mailbox.model import Calendar
from msgraph_emulator.mailbox.render import render_calendar


def calendar_of(who: Caller, request: web.Request) -> Calendar:
    """The calendar a route names: ``{calendar_id}`` in the path, else the default one."""
    cid = request.match_info.get("calendar_id")
    cal = who.mailbox.default_calendar() if cid is None else who.mailbox.calendar(cid)
    return who.check_calendar(cal)


def _project(item: dict[str, object], fields: frozenset[str] | None) -> dict[str, object]:
    if fields is None:
        return item
    return {k: v for k, v in item.items() if k in fields or k == "id"}


@graph_handler
async def list_calendars(request: web.Request) -> web.StreamResponse:
    who = caller(request)
    p = prefs(request)
    fields = select(request)
    visible = [c for c in who.mailbox.calendars.values() if not who.delegate or c.is_default]
    items = [_project(render_calendar(who.as_seen(c), who.owner), fields) for c in visible]
    chunk, next_link = page(request, p, items)
    body: dict[str, object] = {"@odata.context": context_url(request, who, "calendars")}
    if next_link:
        body["@odata.nextLink"] = next_link
    body["value"] = chunk
    return respond(body, applied=p.applied)


@graph_handler
async def get_calendar(request: web.Request) -> web.StreamResponse:
    who = caller(request)
    cal = calendar_of(who, request)
    suffix = "calendars/$entity" if "calendar_id" in request.match_info else "calendar/$entity"
    body = {"@odata.context": context_url(request, who, suffix)}
    rendered = render_calendar(who.as_seen(cal), who.owner)
    return respond(body | _project(rendered, select(request)))


def _own_calendar(request: web.Request) -> tuple[Caller, Calendar]:
    """The calendar a PATCH or DELETE names, in a mailbox the caller manages (not a delegate)."""
    who = caller(request, WRITE)
    cal = calendar_of(who, request)
    if who.delegate:
        raise access_denied()
    return who, cal


@graph_handler
async def patch_calendar(request: web.Request) -> web.StreamResponse:
    who, cal = _own_calendar(request)
    update_calendar(who.mailbox, cal, parse_calendar_patch(await read_json(request)))
    suffix = "calendars/$entity" if "calendar_id" in request.match_info else "calendar/$entity"
    body = {"@odata.context": context_url(request, who, suffix)}
    return respond(body | render_calendar(cal, who.owner))


@graph_handler
async def delete_calendar(request: web.Request) -> web.StreamResponse:
    who, cal = _own_calendar(request)
    who.mailboxes.remove_calendar(who.mailbox, cal)
    return web.Response(status=204)
