"""Registers the calendar part: Graph routes under ``/v1.0/me`` and ``/v1.0/users/{id|upn}``
(see ``mailbox_access`` for who may use another user's mailbox) and its control API."""

from __future__ import annotations

from aiohttp import web

from msgraph_emulator.control.mailboxes import setup_control_mailboxes
from msgraph_emulator.control.mailboxes_ground_truth import setup_ground_truth
from msgraph_emulator.graph import calendars, events, events_write, mailbox_settings
from msgraph_emulator.graph.calendar_view import calendar_view
from msgraph_emulator.graph.delta import calendar_view_delta
from msgraph_emulator.graph.events_instances import list_instances
from msgraph_emulator.graph.mailbox_http import EMU
from msgraph_emulator.state import EmulatorState

#: Route prefixes naming a mailbox: the signed-in user's, or any user's by id or UPN.
MAILBOXES = ("/v1.0/me", "/v1.0/users/{user_ref}")
#: Suffixes naming a calendar: the default one (two spellings) or ``{calendar_id}``.
CALENDARS = ("", "/calendar", "/calendars/{calendar_id}")


def setup_mailboxes(app: web.Application, state: EmulatorState) -> None:
    app[EMU] = state
    state.mailboxes.bind(state.changes)
    r = app.router
    for mailbox in MAILBOXES:
        r.add_get(f"{mailbox}/mailboxSettings", mailbox_settings.get_mailbox_settings)
        r.add_get(f"{mailbox}/mailboxSettings/timeZone", mailbox_settings.get_time_zone)
        r.add_get(f"{mailbox}/calendars", calendars.list_calendars)
        for calendar in (f"{mailbox}/calendars/{{calendar_id}}", f"{mailbox}/calendar"):
            r.add_get(calendar, calendars.get_calendar)
            r.add_patch(calendar, calendars.patch_calendar)
            # DELETE of the default calendar (``/calendar``) is refused, not a 405.
            r.add_delete(calendar, calendars.delete_calendar)
    for base in (m + c for m in MAILBOXES for c in CALENDARS):
        r.add_get(f"{base}/events", events.list_events)
        r.add_post(f"{base}/events", events_write.post_event)
        r.add_get(f"{base}/events/{{event_id}}", events.get_event)
        r.add_patch(f"{base}/events/{{event_id}}", events_write.patch_event)
        r.add_delete(f"{base}/events/{{event_id}}", events_write.delete_event_route)
        r.add_get(f"{base}/events/{{event_id}}/instances", list_instances)
        for view in ("calendarView", "calendarview"):
            r.add_get(f"{base}/{view}", calendar_view)
            r.add_get(f"{base}/{view}/delta", calendar_view_delta)
            r.add_get(f"{base}/{view}/delta()", calendar_view_delta)  # the SDKs' spelling
    setup_control_mailboxes(app)
    setup_ground_truth(app)
