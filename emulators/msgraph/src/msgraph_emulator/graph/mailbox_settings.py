"""``GET /me/mailboxSettings`` and ``GET /me/mailboxSettings/timeZone``, also under
``/users/{id|userPrincipalName}`` with the access rules of every ``/users/{id}`` route
(``mailbox_access``: yourself is ``/me``, an unknown user 404 ``ErrorInvalidUser``, another
user's mailbox needs a ``.Shared`` calendar scope and a share, else 403 ``ErrorAccessDenied``).

``timeZone`` is the mailbox time zone exactly as it was set: Outlook accepts Windows names
("GTB Standard Time") and IANA names ("Europe/Bucharest") and Graph returns what the user set,
so a client must handle both forms.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from msgraph_emulator.graph.mailbox_http import caller, context_url, graph_handler, respond

SCOPES = ("User.Read", "MailboxSettings.Read", "MailboxSettings.ReadWrite")


def settings_json(time_zone: str) -> dict[str, Any]:
    return {
        "archiveFolder": "AQMkADAwATM0MDAAMS0yMDkyLWVjMzYtMDACLTAwCgAuAAADxdL0jcWZ1k2",
        "timeZone": time_zone,
        "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
        "dateFormat": "M/d/yyyy",
        "timeFormat": "h:mm tt",
        "userPurpose": "user",
        "automaticRepliesSetting": {
            "status": "disabled",
            "externalAudience": "all",
            "internalReplyMessage": "",
            "externalReplyMessage": "",
            "scheduledStartDateTime": {
                "dateTime": "2024-01-01T00:00:00.0000000",
                "timeZone": "UTC",
            },
            "scheduledEndDateTime": {"dateTime": "2024-01-02T00:00:00.0000000", "timeZone": "UTC"},
        },
        "language": {"locale": "en-US", "displayName": "English (United States)"},
        "workingHours": {
            "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "startTime": "08:00:00.0000000",
            "endTime": "17:00:00.0000000",
            "timeZone": {"name": time_zone},
        },
    }


@graph_handler
async def get_mailbox_settings(request: web.Request) -> web.StreamResponse:
    who = caller(request, SCOPES)
    body = {"@odata.context": context_url(request, who, "mailboxSettings")}
    return respond(body | settings_json(who.user.time_zone))


@graph_handler
async def get_time_zone(request: web.Request) -> web.StreamResponse:
    who = caller(request, SCOPES)
    ctx = context_url(request, who, "mailboxSettings/timeZone")
    return respond({"@odata.context": ctx, "value": who.user.time_zone})
