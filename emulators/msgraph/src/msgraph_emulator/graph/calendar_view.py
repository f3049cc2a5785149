"""``GET .../calendarView?startDateTime&endDateTime``: instances overlapping a window."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from msgraph_emulator.graph.calendars import calendar_of
from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.graph.events import read_prefs
from msgraph_emulator.graph.mailbox_http import caller, context_url, graph_handler, respond
from msgraph_emulator.graph.mailbox_query import page, refuse
from msgraph_emulator.mailbox.errors import MailboxError
from msgraph_emulator.mailbox.render import render_instance
from msgraph_emulator.mailbox.timezones import parse_instant

MAX_DAYS = 1825
_ORDER_OK = frozenset({"start/datetime", "start/datetime asc"})


def query_value(request: web.Request, name: str) -> str | None:
    """Graph reads query parameter names case-insensitively (startdatetime works too)."""
    wanted = name.casefold()
    return next((v for k, v in request.query.items() if k.casefold() == wanted), None)


def window(request: web.Request) -> tuple[datetime, datetime]:
    """``startDateTime``/``endDateTime`` (offset honoured, none = UTC) and Outlook's checks."""
    raw_start, raw_end = query_value(request, "startDateTime"), query_value(request, "endDateTime")
    if not raw_start or not raw_end:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters "
            "StartDateTime and EndDateTime.",
        )
    try:
        lo, hi = parse_instant(raw_start), parse_instant(raw_end)
    except MailboxError as exc:
        raise GraphError(400, "ErrorInvalidParameter", exc.message) from exc
    if hi - lo > timedelta(days=MAX_DAYS):
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "The range between the start and end dates is greater than the allowed range. "
            f"Maximum number of days: {MAX_DAYS}",
        )
    return lo, hi


@graph_handler
async def calendar_view(request: web.Request) -> web.StreamResponse:
    who = caller(request)
    refuse(request, "$filter", "$search")
    order = request.query.get("$orderby")
    if order is not None and order.strip().casefold() not in _ORDER_OK:
        raise GraphError(400, "BadRequest", "The emulator orders calendarView by start only.")
    cal = calendar_of(who, request)
    lo, hi = window(request)
    p = read_prefs(request)
    instances = who.mailbox.instances(cal.id, lo, hi)
    chunk, next_link = page(request, p, instances)
    cid = request.match_info.get("calendar_id")
    suffix = f"calendars('{cid}')/calendarView" if cid else "calendarView"
    body: dict[str, Any] = {"@odata.context": context_url(request, who, suffix)}
    if next_link:
        body["@odata.nextLink"] = next_link
    body["value"] = [render_instance(i, who.owner, p.view) for i in chunk]
    return respond(body, applied=p.applied)
