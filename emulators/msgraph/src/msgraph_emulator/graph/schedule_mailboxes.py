"""Adapter: the calendar part's ``state.mailboxes`` seen as a
:class:`~msgraph_emulator.notify.mailbox_view.MailboxView`.

Free/busy (getSchedule) reads the mailbox's default calendar, as Exchange does; cancelled
instances never show. Change notifications read event etags here (read-only).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from msgraph_emulator.mailbox.busy import instance_cancelled, instance_show_as
from msgraph_emulator.mailbox.instances import in_window
from msgraph_emulator.mailbox.mailboxes import Mailboxes
from msgraph_emulator.notify.mailbox_view import BusyInstance


def etag_of(change_key: str) -> str:
    """``@odata.etag`` of a stored event, exactly as ``mailbox/render.py`` writes it."""
    return f'W/"{change_key}"'


class MailboxesView:
    def __init__(self, mailboxes: Mailboxes) -> None:
        self.mailboxes = mailboxes

    def default_calendar_id(self, user_id: str) -> str | None:
        mb = self.mailboxes.get(user_id)
        if mb is None:
            return None
        return next((c.id for c in mb.calendars.values() if c.is_default), None)

    def event_etag(self, user_id: str, event_id: str) -> str | None:
        mb = self.mailboxes.get(user_id)
        event = mb.events.get(event_id) if mb is not None else None
        return None if event is None else etag_of(event.change_key)

    def event_etags(self, user_id: str) -> dict[str, str]:
        mb = self.mailboxes.get(user_id)
        if mb is None:
            return {}
        return {eid: etag_of(event.change_key) for eid, event in mb.events.items()}

    def instances_between(
        self, user_id: str, start: datetime, end: datetime
    ) -> Iterable[BusyInstance]:
        mb = self.mailboxes.get(user_id)
        calendar_id = self.default_calendar_id(user_id)
        if mb is None or calendar_id is None:
            return []
        found = []
        for inst in in_window(mb.by_calendar.get(calendar_id, {}).values(), start, end):
            if instance_cancelled(inst):
                continue
            base = inst.master or inst.source
            location = inst.source.props.get("location", base.prop("location")) or {}
            found.append(
                BusyInstance(
                    start=inst.start_utc,
                    end=inst.end_utc,
                    show_as=instance_show_as(inst),
                    subject=str(inst.source.props.get("subject", base.prop("subject")) or ""),
                    location=str(location.get("displayName", ""))
                    if isinstance(location, dict)
                    else "",
                    is_private=str(base.prop("sensitivity")).lower() in {"private", "confidential"},
                )
            )
        return found
