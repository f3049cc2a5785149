"""``GET /_emulator/users/{id}/calendars/{cid}/busy?start&end``: availability ground truth.

See :mod:`msgraph_emulator.mailbox.busy` for the exact definitions (blocking = busy, oof,
workingElsewhere; tentative reported apart; cancelled instances excluded).
"""

from __future__ import annotations

from aiohttp import web

from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.graph.mailbox_http import EMU, graph_handler, respond
from msgraph_emulator.mailbox.busy import ground_truth
from msgraph_emulator.mailbox.errors import MailboxError
from msgraph_emulator.mailbox.timezones import parse_instant


@graph_handler
async def busy(request: web.Request) -> web.StreamResponse:
    state = request.app[EMU]
    user = state.users.get(request.match_info["user_id"])
    if user is None:
        raise GraphError(404, "ErrorItemNotFound", "No such user in the emulator.")
    mb = state.mailboxes.ensure(user)
    cid = request.match_info["calendar_id"]
    cal = mb.default_calendar() if cid == "default" else mb.calendar(cid)
    try:
        lo = parse_instant(request.query["start"])
        hi = parse_instant(request.query["end"])
    except (KeyError, MailboxError) as exc:
        raise GraphError(400, "ErrorInvalidParameter", "start and end (ISO 8601) needed.") from exc
    return respond(ground_truth(mb, cal.id, lo, hi))


def setup_ground_truth(app: web.Application) -> None:
    app.router.add_get("/_emulator/users/{user_id}/calendars/{calendar_id}/busy", busy)
