"""Last known ``@odata.etag`` of the events of watched mailboxes, for ``resourceData``.

A change notification carries the event's current etag. The calendar part emits ``deleted``
after the event is gone, so the etag of a deleted event is the last one seen here: the cache
holds every event of each mailbox that has subscriptions, filled when the first subscription
is added (or at the first change) and kept current by every change of that mailbox. A mailbox
whose last subscription went away is forgotten at its next change. Cleared with the state.
"""

from __future__ import annotations

from msgraph_emulator.changes import Change
from msgraph_emulator.notify.mailbox_view import MailboxView


class EtagCache:
    def __init__(self) -> None:
        self._by_user: dict[str, dict[str, str]] = {}

    def prime(self, user_id: str, view: MailboxView) -> None:
        if user_id not in self._by_user:
            self._by_user[user_id] = dict(view.event_etags(user_id))

    def forget(self, user_id: str) -> None:
        self._by_user.pop(user_id, None)

    def clear(self) -> None:
        self._by_user.clear()

    def for_change(self, change: Change, view: MailboxView | None) -> str | None:
        """The etag to send for ``change`` (None: unknown, the key is then left out)."""
        if view is None:
            return None
        self.prime(change.user_id, view)
        known = self._by_user[change.user_id]
        if change.change_type == "deleted":
            return known.pop(change.event_id, None)
        etag = view.event_etag(change.user_id, change.event_id)
        if etag is None:
            known.pop(change.event_id, None)
        else:
            known[change.event_id] = etag
        return etag
