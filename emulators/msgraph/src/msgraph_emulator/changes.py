"""Change feed between the emulator's parts (see ``state.py`` for who owns what).

Ownership: ``directory`` (tenants, users, app registrations, consents, tokens) belongs to the
identity platform; ``mailboxes`` (calendars, events, delta state) to the Graph calendar part;
``subscriptions`` (subscriptions, deliveries, faults) to the change-notification part. Parts talk
through ``changes``: the calendar part emits one :class:`Change` per created/updated/deleted event
and the notification part listens.
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


Listener = Callable[[Change], None]


@dataclass
class ChangeFeed:
    """Synchronous observer list; listeners must not block (schedule work instead)."""

    listeners: list[Listener] = field(default_factory=list)

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def emit(self, change: Change) -> None:
        for listener in self.listeners:
            listener(change)
