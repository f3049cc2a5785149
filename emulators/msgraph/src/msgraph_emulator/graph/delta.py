"""``GET .../calendarView/delta``: paged rounds, ``$skiptoken``/``$deltatoken``, 410 resets."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from msgraph_emulator.appkeys import state_of
from msgraph_emulator.graph.calendar_view import query_value, window
from msgraph_emulator.graph.calendars import calendar_of
from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.graph.mailbox_http import (
    caller,
    graph_handler,
    link,
    origin,
    prefs,
    respond,
)
from msgraph_emulator.graph.mailbox_query import DEFAULT_PAGE, refuse
from msgraph_emulator.mailbox.delta import DeltaItem, Removed, Token
from msgraph_emulator.mailbox.errors import MailboxError
from msgraph_emulator.mailbox.render import (
    Owner,
    View,
    render_delta_occurrence,
    render_instance,
)
from msgraph_emulator.mailbox.timezones import format_offset

EVENT_TYPE = "#microsoft.graph.event"


def render_item(item: DeltaItem, owner: Owner, view: View) -> dict[str, Any]:
    if isinstance(item, Removed):
        return {"@odata.type": EVENT_TYPE, "id": item.id, "@removed": {"reason": "deleted"}}
    if item.type == "occurrence":
        return render_delta_occurrence(item, view)
    return {"@odata.type": EVENT_TYPE} | render_instance(item, owner, view)


def _restart_url(request: web.Request, token: Token) -> str:
    params = {
        "startDateTime": format_offset(token.start),
        "endDateTime": format_offset(token.end),
        "$deltatoken": "",
    }
    return link(request, params)


@graph_handler
async def calendar_view_delta(request: web.Request) -> web.StreamResponse:
    who = caller(request)
    refuse(request, "$select", "$expand", "$filter", "$orderby", "$search")
    p = prefs(request)
    size = p.page_size or DEFAULT_PAGE
    store = who.mailboxes.delta
    raw = request.query.get("$skiptoken") or request.query.get("$deltatoken")
    if raw:
        token = Token.decode(raw)
        if "calendar_id" in request.match_info:
            calendar_of(who, request)  # a calendar removed since: 404, like a first round
        state_calendar = store.calendar_of(token, who.mailbox.user_id)
        if state_calendar is not None:
            who.check_calendar(who.mailbox.calendar(state_calendar))
        try:
            omit = state_of(request).behaviour.omit_cancelled
            result = store.follow(who.mailbox, token, size, omit_cancelled=omit)
        except MailboxError as err:
            if err.status != 410:
                raise
            headers = {"Location": _restart_url(request, token)}
            raise GraphError(err.status, err.code, err.message, headers=headers) from err
    else:
        cal = calendar_of(who, request)
        lo, hi = window(request)
        result = store.start(who.mailbox, cal.id, lo, hi, size)
    body: dict[str, Any] = {"@odata.context": f"{origin(request)}/v1.0/$metadata#Collection(event)"}
    if result.next_token is not None:
        body["@odata.nextLink"] = link(request, {"$skiptoken": result.next_token.encode()})
    else:
        assert result.delta_token is not None
        body["@odata.deltaLink"] = link(request, {"$deltatoken": result.delta_token.encode()})
    body["value"] = [render_item(i, who.owner, p.view) for i in result.items]
    return respond(body, applied=p.applied)


__all__ = ["calendar_view_delta", "query_value"]
