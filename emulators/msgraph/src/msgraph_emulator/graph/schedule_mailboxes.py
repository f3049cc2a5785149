"""Adapter: the calendar part's ``state.mailboxes`` seen as a
:class:`~msgraph_emulator.notify.mailbox_view.MailboxView`.

Free/busy (getSchedule) reads the mailbox's default calendar, as Exchange does, through the
calendar's index (``Mailbox.instances``: O(log n + k) plus, per series, O(log m); never a scan of
every event); cancelled instances never show. Change notifications read event etags here
(read-only), in the format ``mailbox.render.etag_of`` owns.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from msgraph_emulator.mailbox.busy import instance_cancelled, instance_show_as
from msgraph_emulator.mailbox.mailboxes import Mailboxes
from msgraph_emulator.mailbox.model import Instance
from msgraph_emulator.mailbox.render import etag_of
from msgraph_emulator.notify.mailbox_view import BusyInstance


def busy_instance(inst: Instance) -> BusyInstance:
    """One calendar instance as getSchedule reports it (an exception's own values win)."""
    base = inst.master or inst.source
    location = inst.source.props.get("location", base.prop("location")) or {}
    return BusyInstance(
        start=inst.start_utc,
        end=inst.end_utc,
        show_as=instance_show_as(inst),
        subject=str(inst.source.props.get("subject", base.prop("subject")) or ""),
        location=str(location.get("displayName", "")) if isinstance(location, dict) else "",
        is_private=str(base.prop("sensitivity")).lower() in {"private", "confidential"},
    )


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
        return [
            busy_instance(inst)
            for inst in mb.instances(calendar_id, start, end)
            if not instance_cancelled(inst)
        ]
