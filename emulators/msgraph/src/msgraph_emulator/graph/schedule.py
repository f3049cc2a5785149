"""``POST /v1.0/me/calendar/getSchedule`` (and ``/users/{id}/calendar/getSchedule``).

Events come from ``state.subscriptions.mailbox_view`` (an adapter over the calendar part's
mailboxes). Personal accounts get ``400`` (the docs list getSchedule as not supported for them;
the exact error Graph returns is not documented, this one is the emulator's choice). The window
must be under 62 days (the current docs' figure as quoted by third parties; 2021 docs said 42).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from aiohttp import web

from msgraph_emulator.graph.auth import authenticate
from msgraph_emulator.graph.errors import GraphError
from msgraph_emulator.graph.notifications_engine import NOTIFIER
from msgraph_emulator.graph.schedule_view import (
    STATUS_NAMES,
    availability_view,
    format_dttz,
    parse_dttz,
    status_key,
    zone,
)
from msgraph_emulator.users import User

SCOPES = ("Calendars.Read", "Calendars.ReadWrite", "Calendars.Read.Shared")
MAX_SCHEDULES = 20
MAX_WINDOW = timedelta(days=62)
PREFER_TZ = re.compile(r'outlook\.timezone\s*=\s*"?([^";]+)"?', re.IGNORECASE)
WORKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]


def _bad(message: str, code: str = "ErrorInvalidParameter") -> GraphError:
    return GraphError(400, code, message)


def _working_hours(user: User) -> dict[str, Any]:
    return {
        "daysOfWeek": WORKDAYS,
        "startTime": "08:00:00.0000000",
        "endTime": "17:00:00.0000000",
        "timeZone": {"name": user.time_zone},
    }


async def get_schedule(request: web.Request) -> web.Response:
    engine = request.app[NOTIFIER]
    state = engine.state
    ctx = authenticate(request, state.signing_key, any_of=SCOPES)
    caller = state.users.get(ctx.user_id)
    owner_ref = request.match_info.get("user")
    if owner_ref is not None and owner_ref not in (
        ctx.user_id,
        getattr(caller, "user_principal_name", None),
    ):
        raise GraphError(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        )
    if caller is not None and caller.is_personal:
        raise _bad("getSchedule is not supported for personal Microsoft accounts.", "BadRequest")
    try:
        body = await request.json()
        start, end = parse_dttz(body["startTime"]), parse_dttz(body["endTime"])
        schedules = body["schedules"]
        interval = int(body.get("availabilityViewInterval") or 30)
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad(f"Invalid getSchedule request: {exc}", "ErrorInvalidRequest") from exc
    if not isinstance(schedules, list) or not schedules or len(schedules) > MAX_SCHEDULES:
        raise _bad(f"schedules must list between 1 and {MAX_SCHEDULES} addresses.")
    if not 5 <= interval <= 1440:
        raise _bad("availabilityViewInterval must be between 5 and 1440 minutes.")
    if end <= start or end - start >= MAX_WINDOW:
        raise _bad(
            "The time interval must be positive and less than 62 days.", "ErrorInvalidTimeInterval"
        )
    prefer = PREFER_TZ.search(request.headers.get("Prefer", ""))
    out_tz = prefer.group(1).strip() if prefer else "UTC"
    try:
        zone(out_tz)
    except ValueError as exc:
        raise _bad(
            f"Invalid time zone '{out_tz}' in Prefer header.", "ErrorInvalidRequest"
        ) from exc
    view = state.subscriptions.mailbox_view
    value = []
    for address in schedules:
        user = state.users.by_upn(str(address))
        if user is None or user.tenant_id != ctx.tenant_id:
            value.append(
                {
                    "scheduleId": address,
                    "availabilityView": "",
                    "scheduleItems": [],
                    "error": {
                        "message": "The specified recipient is not found or not accessible.",
                        "responseCode": "ErrorMailRecipientNotFound",
                    },
                }
            )
            continue
        items = sorted(
            view.instances_between(user.id, start, end) if view else [], key=lambda i: i.start
        )
        own = user.id == ctx.user_id
        value.append(
            {
                "scheduleId": address,
                "availabilityView": availability_view(items, start, end, interval),
                "scheduleItems": [
                    {
                        "isPrivate": i.is_private,
                        "status": STATUS_NAMES[status_key(i.show_as)],
                        **(
                            {"subject": i.subject, "location": i.location}
                            if own or not i.is_private
                            else {}
                        ),
                        "start": format_dttz(i.start, out_tz),
                        "end": format_dttz(i.end, out_tz),
                    }
                    for i in items
                ],
                "workingHours": _working_hours(user),
            }
        )
    context = (
        f"{state.settings.base_url}/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)"
    )
    return web.json_response({"@odata.context": context, "value": value})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1.0/me/calendar/getSchedule", get_schedule)
    app.router.add_post("/v1.0/users/{user}/calendar/getSchedule", get_schedule)
