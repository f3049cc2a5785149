"""All mailboxes of the emulator (the ``mailboxes`` part of the state) and change emission."""

from __future__ import annotations

from typing import Any

from msgraph_emulator.changes import CalendarRemoved, Change, ChangeFeed, ChangeType
from msgraph_emulator.mailbox import ids
from msgraph_emulator.mailbox.calendar_edits import remove_calendar
from msgraph_emulator.mailbox.delta import DeltaStore
from msgraph_emulator.mailbox.model import Calendar, CalendarAccess
from msgraph_emulator.mailbox.serialize import load_calendars, mailbox_to_json
from msgraph_emulator.mailbox.store import Mailbox
from msgraph_emulator.mailbox.writes import Emit
from msgraph_emulator.users import User


class Mailboxes:
    """Mailboxes by user id, created on first use with a default "Calendar"."""

    def __init__(self) -> None:
        self._by_user: dict[str, Mailbox] = {}
        self.delta = DeltaStore()
        self.feed: ChangeFeed | None = None

    def bind(self, feed: ChangeFeed) -> None:
        self.feed = feed

    def get(self, user_id: str) -> Mailbox | None:
        return self._by_user.get(user_id)

    def ensure(self, user: User) -> Mailbox:
        mb = self._by_user.get(user.id)
        if mb is None:
            mb = self._by_user[user.id] = Mailbox(user.id, user.tenant_id)
        mb.tenant_id = mb.tenant_id or user.tenant_id
        if not any(c.is_default for c in mb.calendars.values()):
            cal = self.add_calendar(mb, "Calendar", user.display_name, user.user_principal_name)
            cal.is_default = True
        return mb

    @staticmethod
    def add_calendar(
        mb: Mailbox,
        name: str,
        owner_name: str,
        owner_address: str,
        access: CalendarAccess = "owner",
        color: str = "auto",
    ) -> Calendar:
        return mb.add_calendar(
            Calendar(
                id=ids.new_id(),
                name=name,
                owner_name=owner_name,
                owner_address=owner_address,
                access=access,
                color=color,
                change_key=ids.new_change_key(),
            )
        )

    def remove_calendar(self, mb: Mailbox, calendar: Calendar) -> None:
        """Delete a non-default calendar (or withdraw a share) with its events, and tell the
        other parts (subscriptions on it are removed) through the change feed."""
        remove_calendar(mb, calendar)
        if self.feed is not None:
            self.feed.emit_removed(CalendarRemoved(mb.user_id, mb.tenant_id, calendar.id))

    def emitter(self, mb: Mailbox) -> Emit:
        def emit(calendar_id: str, event_id: str, change_type: ChangeType) -> None:
            if self.feed is not None:
                self.feed.emit(Change(mb.user_id, mb.tenant_id, calendar_id, event_id, change_type))

        return emit

    def reset(self) -> None:
        self._by_user.clear()
        self.delta.reset()

    def dump(self) -> dict[str, Any]:
        return {uid: mailbox_to_json(mb) for uid, mb in self._by_user.items()}

    def load(self, data: dict[str, Any]) -> None:
        for user_id, box in data.items():
            mb = self._by_user.get(user_id) or Mailbox(user_id, str(box.get("tenantId") or ""))
            self._by_user[user_id] = mb
            load_calendars(mb, box.get("calendars") or [])
            mb.seq = max(mb.seq, int(box.get("seq") or 0))
