"""Changing and removing calendars (same rules for Graph and the control API; no HTTP here).

Graph v1.0 ``PATCH /me/calendars/{id}`` (calendar-update.md) updates ``name``, ``color`` and
``isDefaultCalendar``; ``DELETE /me/calendars/{id}`` (calendar-delete.md) deletes "a calendar
other than the default calendar". The control API may also set ``access``: how a calendar
shared with the user is exposed to them (``read`` or ``write``).

Decisions (Microsoft does not document these cases):

* ``access`` belongs to the share: an own calendar is always ``owner`` and a shared calendar
  can't become the user's own, so ``owner`` ↔ ``read``/``write`` is ``400 ErrorInvalidRequest``.
* Only an own calendar can become the default; ``isDefaultCalendar: false`` on the default is
  refused (make another calendar the default instead).
* Read-only calendar properties in a body (``id``, ``changeKey``, ``canEdit``…) are ignored, as
  for events; unknown ones are ``400 RequestBodyRead``. Duplicate names are not refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from msgraph_emulator.mailbox import ids
from msgraph_emulator.mailbox.errors import (
    MailboxError,
    body_read,
    cannot_delete_default,
    invalid_request,
)
from msgraph_emulator.mailbox.model import Calendar, CalendarAccess, Event
from msgraph_emulator.mailbox.store import Mailbox

#: Graph's ``calendarColor`` values (read case-insensitively, returned in this spelling).
COLORS = (
    "auto",
    "lightBlue",
    "lightGreen",
    "lightOrange",
    "lightGray",
    "lightYellow",
    "lightTeal",
    "lightPink",
    "lightBrown",
    "lightRed",
    "maxColor",
)
ACCESS: tuple[CalendarAccess, ...] = ("owner", "read", "write")
#: Read-only properties of a calendar: accepted in a body (SDKs echo them) and ignored.
_IGNORED = frozenset(
    {
        "id",
        "changeKey",
        "hexColor",
        "canShare",
        "canViewPrivateItems",
        "canEdit",
        "allowedOnlineMeetingProviders",
        "defaultOnlineMeetingProvider",
        "isTallyingResponses",
        "isRemovable",
        "owner",
        "@odata.type",
        "@odata.etag",
        "@odata.context",
    }
)


@dataclass(frozen=True)
class CalendarPatch:
    name: str | None = None
    color: str | None = None
    is_default: bool | None = None
    access: CalendarAccess | None = None  # control API only


def _unknown(name: str) -> MailboxError:
    return body_read(
        f"The property '{name}' does not exist on type 'microsoft.graph.calendar'. Make sure to "
        "only use property names that are defined by the type or mark the type as open type."
    )


def _choice(value: Any, allowed: tuple[str, ...]) -> str:
    for option in allowed:
        if isinstance(value, str) and value.casefold() == option.casefold():
            return option
    raise body_read(f"Requested value '{value}' was not found.")


def parse_calendar_patch(body: Any, *, control: bool = False) -> CalendarPatch:
    """Validate a calendar PATCH body; ``access`` is a property of the control API only."""
    if not isinstance(body, dict) or not body:
        raise body_read("Empty Payload. JSON content expected.")
    fields: dict[str, Any] = {}
    for key, value in body.items():
        if key in _IGNORED or key.endswith("@odata.type"):
            continue
        if key == "name":
            if not isinstance(value, str):
                raise body_read(
                    f"Cannot convert the literal '{value}' to the expected type 'Edm.String'."
                )
            if not value.strip():
                raise invalid_request("The calendar name can't be empty.")
            fields["name"] = value
        elif key == "color":
            fields["color"] = _choice(value, COLORS)
        elif key == "isDefaultCalendar":
            if not isinstance(value, bool):
                raise body_read(
                    f"Cannot convert the literal '{value}' to the expected type 'Edm.Boolean'."
                )
            fields["is_default"] = value
        elif key == "access" and control:
            fields["access"] = cast(CalendarAccess, _choice(value, ACCESS))
        else:
            raise _unknown(key)
    return CalendarPatch(**fields)


def _check_access(calendar: Calendar, access: CalendarAccess) -> None:
    if calendar.access == "owner" and access != "owner":
        raise invalid_request(
            "The user owns this calendar, so its access is always 'owner'; 'read' and 'write' "
            "apply to calendars shared with the user."
        )
    if calendar.access != "owner" and access == "owner":
        raise invalid_request(
            "A calendar shared with the user can't become their own; its access is 'read' or "
            "'write'."
        )


def update_calendar(mb: Mailbox, calendar: Calendar, patch: CalendarPatch) -> Calendar:
    """Apply ``patch`` (all checks first, so a refused patch changes nothing)."""
    if patch.access is not None:
        _check_access(calendar, patch.access)
    if patch.is_default and calendar.access != "owner":
        raise invalid_request("Only one of the user's own calendars can be the default calendar.")
    if patch.is_default is False and calendar.is_default:
        raise invalid_request(
            "The default calendar stays the default until another calendar is made the default."
        )
    if patch.name is not None:
        calendar.name = patch.name
    if patch.color is not None:
        calendar.color = patch.color
    if patch.access is not None:
        calendar.access = patch.access
    if patch.is_default and not calendar.is_default:
        for other in mb.calendars.values():
            if other.is_default:
                other.is_default = False
                other.change_key = ids.new_change_key()
        calendar.is_default = True
    calendar.change_key = ids.new_change_key()
    return calendar


def remove_calendar(mb: Mailbox, calendar: Calendar) -> list[Event]:
    """Take a non-default calendar (own, or a share) out of the mailbox with its events."""
    if calendar.is_default:
        raise cannot_delete_default()
    return mb.drop_calendar(calendar.id)
