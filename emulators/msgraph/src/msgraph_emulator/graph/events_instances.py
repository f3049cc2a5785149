"""``GET {cal}/events/{id}/instances?startDateTime&endDateTime``: a series' instances in a window.

As documented for the ``instances`` relationship: the occurrences and the modified exceptions of
a series master that overlap the window, never cancelled occurrences; both bounds are required
(same rules as calendarView: offsets honoured, 1825 days at most). *Decision:* for an id that is
not a series master (a single instance, an occurrence or an exception) the collection is empty;
Microsoft does not document that case.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from msgraph_emulator.graph.calendar_view import window
from msgraph_emulator.graph.events import events_context, locate_in_route, read_prefs
from msgraph_emulator.graph.mailbox_http import caller, graph_handler, respond
from msgraph_emulator.graph.mailbox_query import page, refuse
from msgraph_emulator.mailbox.instances import series_in_window
from msgraph_emulator.mailbox.model import Instance
from msgraph_emulator.mailbox.render import render_instance


@graph_handler
async def list_instances(request: web.Request) -> web.StreamResponse:
    who = caller(request)
    refuse(request, "$filter", "$search", "$orderby")
    found = locate_in_route(who, request)
    lo, hi = window(request)
    p = read_prefs(request)
    items: list[Instance] = []
    if found.instance is None and found.event.recurrence is not None:
        items = sorted(series_in_window(found.event, lo, hi), key=lambda i: (i.start_utc, i.id))
    chunk, next_link = page(request, p, items)
    events = events_context(request, who).rsplit("/events", 1)[0]
    event_id = quote(request.match_info["event_id"], safe="")
    body: dict[str, Any] = {"@odata.context": f"{events}/events('{event_id}')/instances"}
    if next_link:
        body["@odata.nextLink"] = next_link
    body["value"] = [render_instance(i, who.owner, p.view) for i in chunk]
    return respond(body, applied=p.applied)
