"""Stored calendars and events (one mailbox's items), independent of any wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

CalendarAccess = Literal["owner", "read", "write"]
EventType = Literal["singleInstance", "occurrence", "exception", "seriesMaster"]

#: Simple event properties and the value Graph returns when a client never set them.
PROP_DEFAULTS: dict[str, Any] = {
    "subject": "",
    "body": {"contentType": "text", "content": ""},
    "location": None,  # rendered as Graph's empty location
    "locations": [],
    "attendees": [],
    "organizer": None,  # rendered as the mailbox owner
    "categories": [],
    "importance": "normal",
    "sensitivity": "normal",
    "showAs": "busy",
    "isCancelled": False,
    "isOrganizer": True,
    "isReminderOn": True,
    "reminderMinutesBeforeStart": 15,
    "responseRequested": True,
    "allowNewTimeProposals": True,
    "hideAttendees": False,
    "isDraft": False,
    "isOnlineMeeting": False,
    "onlineMeetingProvider": "unknown",
    "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
}


@dataclass
class Calendar:
    id: str
    name: str
    owner_name: str
    owner_address: str
    access: CalendarAccess = "owner"
    is_default: bool = False
    color: str = "auto"
    hex_color: str = ""
    change_key: str = ""


@dataclass
class Event:
    """A single instance, a series master, or an exception (the modified occurrence of a master).

    ``start``/``end`` are aware datetimes in the zones the client gave (``start_tz``/``end_tz``
    as spelled by the client, returned as originalStartTimeZone/originalEndTimeZone).
    """

    id: str
    calendar_id: str
    ical_uid: str
    change_key: str
    created: datetime
    last_modified: datetime
    start: datetime
    end: datetime
    start_tz: str
    end_tz: str
    is_all_day: bool = False
    props: dict[str, Any] = field(default_factory=dict)
    recurrence: dict[str, Any] | None = None
    transaction_id: str | None = None
    extended: dict[str, str] = field(default_factory=dict)
    #: seriesMaster only: exceptions by original start (UTC epoch seconds) and cancelled starts.
    exceptions: dict[int, Event] = field(default_factory=dict)
    cancelled: set[int] = field(default_factory=set)
    #: exception only
    series_master_id: str | None = None
    original_start: datetime | None = None
    #: seriesMaster only: cached expansion (``mailbox.expansion``), rebuilt when the series changes.
    expansion: object | None = field(default=None, repr=False, compare=False)

    @property
    def type(self) -> EventType:
        if self.original_start is not None:
            return "exception"
        return "seriesMaster" if self.recurrence is not None else "singleInstance"

    def prop(self, name: str) -> Any:
        return self.props.get(name, PROP_DEFAULTS.get(name))

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return self.end.astimezone(UTC)


@dataclass(frozen=True)
class Instance:
    """What calendarView returns: a single instance, an occurrence, or an exception.

    ``source`` is the stored event whose properties the instance shows (the master for a plain
    occurrence); ``master`` is the series master (None for single instances).
    """

    id: str
    type: EventType
    start: datetime  # aware, in the event's start zone
    end: datetime
    source: Event
    master: Event | None = None
    original_start: datetime | None = None

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return self.end.astimezone(UTC)

    @property
    def event_id(self) -> str:
        """The stored item a change to this instance is recorded against (master or single)."""
        return self.master.id if self.master is not None else self.source.id
