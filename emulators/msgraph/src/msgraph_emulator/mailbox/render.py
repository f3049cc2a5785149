"""Events and calendars as Graph v1.0 serialises them (property names, order, formats)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from msgraph_emulator.mailbox.ids import occurrence_ical_uid
from msgraph_emulator.mailbox.instances import single
from msgraph_emulator.mailbox.model import PROP_DEFAULTS, Calendar, Event, Instance
from msgraph_emulator.mailbox.timezones import format_local, format_offset, format_utc

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_B64URL = re.compile(r"[A-Za-z0-9_\-]*=*")
EMPTY_LOCATION = {
    "displayName": "",
    "locationType": "default",
    "uniqueIdType": "unknown",
    "address": {},
    "coordinates": {},
}
#: Occurrence items in calendarView/delta carry only these (Graph documents this).
DELTA_OCCURRENCE_KEYS = (
    "@odata.type",
    "@odata.etag",
    "seriesMasterId",
    "type",
    "id",
    "start",
    "end",
)


def etag_of(change_key: str) -> str:
    """``@odata.etag`` of an item with this ``changeKey``: the one place its format is written
    (event GETs, calendarView/delta items, and the change notifications' ``resourceData``)."""
    return f'W/"{change_key}"'


@dataclass(frozen=True)
class Owner:
    name: str
    address: str
    personal: bool = False


@dataclass(frozen=True)
class View:
    """How to render: output zone (Prefer: outlook.timezone), $select, expanded properties."""

    zone: ZoneInfo | None = None
    zone_label: str = "UTC"
    select: frozenset[str] | None = None
    expand_ext: frozenset[str] | None = None  # casefolded ids, or empty = all


def date_time_zone(value: datetime, view: View, all_day: bool) -> dict[str, str]:
    if all_day:  # midnight-to-midnight, labelled UTC, whatever the Prefer header says
        return {"dateTime": format_local(value.replace(tzinfo=None)), "timeZone": "UTC"}
    local = value.astimezone(view.zone or UTC)
    return {"dateTime": format_local(local), "timeZone": view.zone_label}


def body_preview(body: dict[str, Any]) -> str:
    text = body.get("content", "")
    if body.get("contentType") == "html":
        text = html.unescape(_TAG.sub(" ", text))
    return _SPACE.sub(" ", text).strip()[:255]


def web_link(item_id: str, owner: Owner) -> str:
    host = "outlook.live.com" if owner.personal else "outlook.office365.com"
    # Base64url ids only need "=" escaped; quote() is the slow general case.
    escaped = item_id.replace("=", "%3D") if _B64URL.fullmatch(item_id) else quote(item_id, safe="")
    return f"https://{host}/owa/?itemid={escaped}&exvsurl=1&path=/calendar/item"


def render_instance(inst: Instance, owner: Owner, view: View) -> dict[str, Any]:
    src, master = inst.source, inst.master
    base = master if master is not None else src
    # An exception's own properties win over its master's; unset ones take Graph's defaults.
    merged = (
        PROP_DEFAULTS | base.props | src.props if src is not base else PROP_DEFAULTS | src.props
    )
    prop = merged.get

    change_key = src.change_key
    body: dict[str, Any] = merged["body"]
    location = prop("location") or EMPTY_LOCATION
    out: dict[str, Any] = {
        "@odata.etag": etag_of(change_key),
        "id": inst.id,
        "createdDateTime": format_utc(src.created if inst.type != "occurrence" else base.created),
        "lastModifiedDateTime": format_utc(src.last_modified),
        "changeKey": change_key,
        "categories": prop("categories"),
        "transactionId": base.transaction_id if inst.type != "occurrence" else None,
        "originalStartTimeZone": base.start_tz,
        "originalEndTimeZone": base.end_tz,
        "iCalUId": (
            src.ical_uid
            if inst.type != "occurrence"
            else _occ_uid(base.ical_uid, inst.original_start)
        ),
        "reminderMinutesBeforeStart": prop("reminderMinutesBeforeStart"),
        "isReminderOn": prop("isReminderOn"),
        "hasAttachments": False,
        "subject": prop("subject"),
        "bodyPreview": body_preview(body),
        "importance": prop("importance"),
        "sensitivity": prop("sensitivity"),
        "isAllDay": base.is_all_day,
        "isCancelled": prop("isCancelled"),
        "isOrganizer": prop("isOrganizer"),
        "responseRequested": prop("responseRequested"),
        "seriesMasterId": master.id if master is not None else None,
        "showAs": prop("showAs"),
        "type": inst.type,
        "webLink": web_link(inst.id, owner),
        "onlineMeetingUrl": None,
        "isOnlineMeeting": prop("isOnlineMeeting"),
        "onlineMeetingProvider": prop("onlineMeetingProvider"),
        "allowNewTimeProposals": prop("allowNewTimeProposals"),
        "isDraft": False,
        "hideAttendees": prop("hideAttendees"),
        "responseStatus": prop("responseStatus"),
        "body": body,
        "start": date_time_zone(inst.start, view, base.is_all_day),
        "end": date_time_zone(inst.end, view, base.is_all_day),
        "location": location,
        "locations": prop("locations") or ([location] if location["displayName"] else []),
        "recurrence": base.recurrence if inst.type == "seriesMaster" else None,
        "attendees": prop("attendees"),
        "organizer": prop("organizer")
        or {"emailAddress": {"name": owner.name, "address": owner.address}},
        "onlineMeeting": None,
    }
    if out["transactionId"] is None:
        del out["transactionId"]  # "only returned in a response payload if an app has set it"
    if inst.original_start is not None:
        out["originalStart"] = format_offset(inst.original_start)
    if view.expand_ext is not None:
        ext = base.extended if inst.type == "occurrence" else src.extended
        out["singleValueExtendedProperties"] = [
            {"id": k, "value": v}
            for k, v in ext.items()
            if not view.expand_ext or k.casefold() in view.expand_ext
        ]
    if view.select is not None:
        keep = view.select | {"@odata.etag", "id", "singleValueExtendedProperties"}
        out = {k: v for k, v in out.items() if k in keep}
    return out


def _occ_uid(master_uid: str, original_start: datetime | None) -> str:
    assert original_start is not None
    return occurrence_ical_uid(master_uid, original_start)


def render_event(event: Event, owner: Owner, view: View) -> dict[str, Any]:
    inst = single(event)
    if event.recurrence is not None:
        inst = Instance(event.id, "seriesMaster", event.start, event.end, event)
    return render_instance(inst, owner, view)


def render_delta_occurrence(inst: Instance, view: View) -> dict[str, Any]:
    base = inst.master or inst.source
    return {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": etag_of(inst.source.change_key),
        "seriesMasterId": base.id,
        "type": inst.type,
        "id": inst.id,
        "start": date_time_zone(inst.start, view, base.is_all_day),
        "end": date_time_zone(inst.end, view, base.is_all_day),
    }


def render_calendar(cal: Calendar, owner: Owner) -> dict[str, Any]:
    providers = ["skypeForConsumer"] if owner.personal else ["teamsForBusiness"]
    is_owner = cal.access == "owner"
    return {
        "id": cal.id,
        "name": cal.name,
        "color": cal.color,
        "hexColor": cal.hex_color,
        "isDefaultCalendar": cal.is_default,
        "changeKey": cal.change_key,
        "canShare": is_owner,
        "canViewPrivateItems": is_owner,
        "canEdit": cal.access != "read",
        "allowedOnlineMeetingProviders": providers,
        "defaultOnlineMeetingProvider": providers[0],
        "isTallyingResponses": is_owner,
        "isRemovable": not cal.is_default,
        "owner": {"name": cal.owner_name, "address": cal.owner_address},
    }
