"""Change feed between the emulator's parts (see ``state.py`` for who owns what).

Ownership: ``directory`` (tenants, users, app registrations, consents, tokens) belongs to the
identity platform; ``mailboxes`` (calendars, events, delta state) to the Graph calendar part;
``subscriptions`` (subscriptions, deliveries, faults) to the change-notification part. Parts talk
through ``changes``: the calendar part emits one :class:`Change` per created/updated/deleted event,
and one :class:`CalendarRemoved` when a whole calendar leaves a mailbox; the notification part
listens to both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

ChangeType = Literal["created", "updated", "deleted"]


@dataclass(frozen=True)
class Change:
    """One change to one event, as Graph would notify it."""

    user_id: str
    tenant_id: str
    calendar_id: str
    event_id: str
    change_type: ChangeType


@dataclass(frozen=True)
class CalendarRemoved:
    """A calendar left a mailbox with every event in it: deleted, or a share withdrawn.

    No per-event ``deleted`` change is emitted for its events: the folder goes as a whole, and
    the subscriptions that watched it are removed (``subscriptionRemoved``) instead.
    """

    user_id: str
    tenant_id: str
    calendar_id: str


Listener = Callable[[Change], None]
RemovalListener = Callable[[CalendarRemoved], None]


@dataclass
class ChangeFeed:
    """Synchronous observer list; listeners must not block (schedule work instead)."""

    listeners: list[Listener] = field(default_factory=list)
    removal_listeners: list[RemovalListener] = field(default_factory=list)

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def subscribe_removals(self, listener: RemovalListener) -> None:
        self.removal_listeners.append(listener)

    def emit(self, change: Change) -> None:
        for listener in self.listeners:
            listener(change)

    def emit_removed(self, removed: CalendarRemoved) -> None:
        for listener in self.removal_listeners:
            listener(removed)
