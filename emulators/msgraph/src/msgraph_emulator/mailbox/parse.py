"""Reading a client's event JSON (POST / PATCH bodies, seeds) into validated values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from msgraph_emulator.mailbox.errors import MailboxError, body_read

_ENUMS: dict[str, tuple[str, ...]] = {
    "importance": ("low", "normal", "high"),
    "sensitivity": ("normal", "personal", "private", "confidential"),
    "showAs": ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown"),
    "onlineMeetingProvider": (
        "unknown",
        "teamsForBusiness",
        "skypeForBusiness",
        "skypeForConsumer",
    ),
}
_BOOLS = (
    "isReminderOn",
    "responseRequested",
    "allowNewTimeProposals",
    "hideAttendees",
    "isOnlineMeeting",
)
#: Read-only properties: accepted in a body (SDKs echo them) and ignored, as Graph does.
_IGNORED = frozenset(
    {
        "id",
        "changeKey",
        "createdDateTime",
        "lastModifiedDateTime",
        "iCalUId",
        "type",
        "seriesMasterId",
        "webLink",
        "bodyPreview",
        "originalStart",
        "originalStartTimeZone",
        "originalEndTimeZone",
        "hasAttachments",
        "onlineMeeting",
        "onlineMeetingUrl",
        "isDraft",
        "@odata.type",
        "@odata.etag",
        "@odata.context",
    }
)
#: Properties only Outlook itself (the control API) can set.
_CONTROL_ONLY = frozenset({"isOrganizer", "organizer", "responseStatus", "isCancelled"})


@dataclass
class EventInput:
    props: dict[str, Any] = field(default_factory=dict)
    start: tuple[str, str] | None = None
    end: tuple[str, str] | None = None
    is_all_day: bool | None = None
    recurrence: dict[str, Any] | None = None
    recurrence_set: bool = False
    transaction_id: str | None = None
    extended: dict[str, str] = field(default_factory=dict)


def _enum(name: str, value: Any) -> str:
    for allowed in _ENUMS[name]:
        if isinstance(value, str) and value.casefold() == allowed.casefold():
            return allowed
    raise body_read(f"Requested value '{value}' was not found.")


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise body_read(f"Cannot convert the literal '{value}' to the expected type 'Edm.Boolean'.")
    return value


def _date_time_zone(name: str, value: Any) -> tuple[str, str]:
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise MailboxError(400, "ErrorInvalidRequest", f"The '{name}' property is invalid.")
    return value["dateTime"], str(value.get("timeZone") or "UTC")


def _email(value: Any) -> dict[str, str]:
    addr = value.get("emailAddress") if isinstance(value, dict) else None
    if not isinstance(addr, dict):
        raise body_read("Invalid recipient: emailAddress is required.")
    return {
        "name": str(addr.get("name") or addr.get("address") or ""),
        "address": str(addr.get("address") or ""),
    }


def _attendee(value: Any) -> dict[str, Any]:
    kind = str(value.get("type") or "required") if isinstance(value, dict) else "required"
    status = value.get("status") if isinstance(value, dict) else None
    return {
        "type": kind,
        "status": status or {"response": "none", "time": "0001-01-01T00:00:00Z"},
        "emailAddress": _email(value),
    }


def _location(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise body_read("Invalid location.")
    name = str(value.get("displayName") or "")
    loc: dict[str, Any] = {
        "displayName": name,
        "locationType": value.get("locationType") or "default",
    }
    if name:
        loc |= {"uniqueId": value.get("uniqueId") or name, "uniqueIdType": "private"}
    else:
        loc |= {"uniqueIdType": "unknown", "address": {}, "coordinates": {}}
    return loc


def _prop(name: str, value: Any) -> Any:
    if name in _ENUMS:
        return _enum(name, value)
    if name in _BOOLS or name in ("isOrganizer", "isCancelled"):
        return _bool(name, value)
    if name == "subject":
        return "" if value is None else str(value)
    if name == "body":
        if not isinstance(value, dict):
            raise body_read("Invalid body.")
        kind = _enum_body(value.get("contentType") or "text")
        return {"contentType": kind, "content": str(value.get("content") or "")}
    if name == "location":
        return _location(value)
    if name == "locations":
        return [_location(v) for v in value or []]
    if name == "attendees":
        if not isinstance(value, list) or len(value) > 500:
            raise body_read("Invalid attendees.")
        return [_attendee(v) for v in value]
    if name == "categories":
        return [str(v) for v in value or []]
    if name == "reminderMinutesBeforeStart":
        return int(value)
    if name == "organizer":
        return {"emailAddress": _email(value)}
    if name == "responseStatus":
        return {
            "response": str(value.get("response") or "none"),
            "time": str(value.get("time") or "0001-01-01T00:00:00Z"),
        }
    raise _unknown(name)


def _enum_body(value: Any) -> str:
    if isinstance(value, str) and value.casefold() in ("text", "html"):
        return value.casefold()
    raise body_read(f"Requested value '{value}' was not found.")


def _unknown(name: str) -> MailboxError:
    return body_read(
        f"The property '{name}' does not exist on type 'microsoft.graph.event'. Make sure to only "
        "use property names that are defined by the type or mark the type as open type."
    )


def parse_event(body: Any, *, control: bool = False) -> EventInput:
    """Validate an event body; unknown properties are refused like Graph's OData reader does."""
    if not isinstance(body, dict):
        raise body_read("Empty Payload. JSON content expected.")
    out = EventInput()
    for name, value in body.items():
        if name in _IGNORED or name.endswith("@odata.type"):
            continue
        if name in _CONTROL_ONLY and not control:
            continue
        if name in ("start", "end"):
            setattr(out, name, _date_time_zone(name, value))
        elif name == "isAllDay":
            out.is_all_day = _bool(name, value)
        elif name == "recurrence":
            out.recurrence, out.recurrence_set = value, True
        elif name == "transactionId":
            out.transaction_id = None if value is None else str(value)
        elif name == "singleValueExtendedProperties":
            for prop in value or []:
                if not isinstance(prop, dict) or not isinstance(prop.get("id"), str):
                    raise body_read("Invalid singleValueExtendedProperties.")
                out.extended[prop["id"]] = str(prop.get("value") or "")
        else:
            out.props[name] = _prop(name, value)
    return out
