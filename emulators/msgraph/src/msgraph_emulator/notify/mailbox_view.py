"""What this part needs from the calendar part's mailboxes (an adapter implements it).

``state.subscriptions.mailbox_view`` is set by the app to an adapter over ``state.mailboxes``.
Without one, ``/me/events`` subscriptions match every calendar, getSchedule sees no events and
notifications carry no ``@odata.etag``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class BusyInstance:
    """One occurrence (single event or expanded series instance) as getSchedule reports it."""

    start: datetime  # aware, UTC
    end: datetime  # aware, UTC
    show_as: str  # free | tentative | busy | oof | workingElsewhere | unknown
    subject: str
    location: str
    is_private: bool


class MailboxView(Protocol):
    def default_calendar_id(self, user_id: str) -> str | None:
        """Id of the user's default calendar, or None if the user has no mailbox."""

    def instances_between(
        self, user_id: str, start: datetime, end: datetime
    ) -> Iterable[BusyInstance]:
        """Occurrences overlapping [start, end) across the calendars getSchedule considers."""

    def event_etag(self, user_id: str, event_id: str) -> str | None:
        """The stored event's current ``@odata.etag`` (as a GET returns it), None if unknown."""

    def event_etags(self, user_id: str) -> dict[str, str]:
        """``{event id: @odata.etag}`` of every stored event (singles and series masters)."""
