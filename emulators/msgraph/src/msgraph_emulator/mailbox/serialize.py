"""Mailbox state to and from JSON (state dumps, seeds). Seeds may omit ids and metadata.

Format (value of the ``mailboxes`` key): ``{"<user id>": {"seq": n, "calendars": [{"id", "name",
"access": "owner|read|write", "isDefaultCalendar", "owner": {"name", "address"}, "color",
"events": [<Graph event JSON, plus optional id/iCalUId/changeKey/createdDateTime/
lastModifiedDateTime, "exceptions": [<event JSON + originalStart>], "cancelledOccurrences":
[<originalStart>]>]}]}}``. Event bodies are read with the same rules as POST.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from msgraph_emulator.mailbox import ids, recurrence
from msgraph_emulator.mailbox.model import Calendar, Event
from msgraph_emulator.mailbox.parse import parse_event
from msgraph_emulator.mailbox.store import Mailbox
from msgraph_emulator.mailbox.timezones import format_local, format_utc, parse_instant, parse_local
from msgraph_emulator.mailbox.timezones import resolve_zone as zone_of


def _stamp(value: Any) -> datetime:
    return parse_instant(str(value)) if value else datetime.now(UTC)


def event_to_json(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": event.id,
        "iCalUId": event.ical_uid,
        "changeKey": event.change_key,
        "createdDateTime": format_utc(event.created),
        "lastModifiedDateTime": format_utc(event.last_modified),
        "start": {"dateTime": format_local(event.start), "timeZone": event.start_tz},
        "end": {"dateTime": format_local(event.end), "timeZone": event.end_tz},
        "isAllDay": event.is_all_day,
        **event.props,
    }
    if event.recurrence is not None:
        out["recurrence"] = event.recurrence
    if event.transaction_id:
        out["transactionId"] = event.transaction_id
    if event.extended:
        out["singleValueExtendedProperties"] = [
            {"id": k, "value": v} for k, v in event.extended.items()
        ]
    if event.original_start is not None:
        out["originalStart"] = format_utc(event.original_start)
    if event.exceptions:
        out["exceptions"] = [event_to_json(e) for e in event.exceptions.values()]
    if event.cancelled:
        out["cancelledOccurrences"] = [
            format_utc(datetime.fromtimestamp(k, UTC)) for k in sorted(event.cancelled)
        ]
    return out


def event_from_json(data: dict[str, Any], calendar_id: str, master: Event | None = None) -> Event:
    body = {k: v for k, v in data.items() if k not in ("exceptions", "cancelledOccurrences")}
    inp = parse_event(body, control=True)
    start, end = inp.start or ("", "UTC"), inp.end or ("", "UTC")
    event = Event(
        id=str(data.get("id") or ids.new_id()),
        calendar_id=calendar_id,
        ical_uid=str(data.get("iCalUId") or ids.new_ical_uid()),
        change_key=str(data.get("changeKey") or ids.new_change_key()),
        created=_stamp(data.get("createdDateTime")),
        last_modified=_stamp(data.get("lastModifiedDateTime")),
        start=parse_local(start[0], zone_of(start[1])),
        end=parse_local(end[0], zone_of(end[1])),
        start_tz=start[1],
        end_tz=end[1],
        is_all_day=bool(inp.is_all_day),
        props=inp.props,
        transaction_id=inp.transaction_id,
        extended=inp.extended,
    )
    if inp.recurrence is not None:
        event.recurrence = recurrence.normalize(inp.recurrence, event.start_tz)
    if master is not None:
        event.original_start = parse_instant(str(data["originalStart"]))
        event.series_master_id = master.id
        event.id = ids.occurrence_id(master.id, event.original_start)
    for exc_data in data.get("exceptions") or []:
        exc = event_from_json(exc_data, calendar_id, event)
        assert exc.original_start is not None
        event.exceptions[int(exc.original_start.timestamp())] = exc
    event.cancelled = {
        int(parse_instant(str(v)).timestamp()) for v in data.get("cancelledOccurrences") or []
    }
    return event


def calendar_to_json(cal: Calendar, events: list[Event]) -> dict[str, Any]:
    return {
        "id": cal.id,
        "name": cal.name,
        "access": cal.access,
        "isDefaultCalendar": cal.is_default,
        "owner": {"name": cal.owner_name, "address": cal.owner_address},
        "color": cal.color,
        "hexColor": cal.hex_color,
        "changeKey": cal.change_key,
        "events": [event_to_json(e) for e in events],
    }


def mailbox_to_json(mb: Mailbox) -> dict[str, Any]:
    return {
        "tenantId": mb.tenant_id,
        "seq": mb.seq,
        "calendars": [
            calendar_to_json(c, list(mb.by_calendar.get(c.id, {}).values()))
            for c in mb.calendars.values()
        ],
    }


def load_calendars(mb: Mailbox, calendars: list[dict[str, Any]]) -> None:
    for data in calendars:
        owner = data.get("owner") or {}
        cal = mb.add_calendar(
            Calendar(
                id=str(data.get("id") or ids.new_id()),
                name=str(data.get("name") or "Calendar"),
                owner_name=str(owner.get("name") or ""),
                owner_address=str(owner.get("address") or ""),
                access=data.get("access") or "owner",
                is_default=bool(data.get("isDefaultCalendar")),
                color=str(data.get("color") or "auto"),
                hex_color=str(data.get("hexColor") or ""),
                change_key=str(data.get("changeKey") or ids.new_change_key()),
            )
        )
        for event_data in data.get("events") or []:
            mb.put(event_from_json(event_data, cal.id))
