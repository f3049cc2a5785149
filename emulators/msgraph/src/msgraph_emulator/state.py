"""The emulator's whole in-memory state, composed of one part per area.

Ownership: ``users`` is shared. The identity platform (``identity/``) owns its part (app
registrations, consents, authorization codes, refresh tokens); the Graph calendar part owns
``mailboxes`` (calendars, events, delta state); the change-notification part owns
``subscriptions`` (subscriptions, deliveries, faults, throttling); ``behaviour`` holds the
switches between documented and field-reported Graph behaviours (``mailbox/behaviour.py``).
Parts talk through ``changes``: the calendar part emits one
:class:`~msgraph_emulator.changes.Change` per created/updated/deleted event (and a
:class:`~msgraph_emulator.changes.CalendarRemoved` per removed calendar) and the notification
part listens.

Every part offers ``reset()``, ``dump() -> dict`` and ``load(dict)``; a state file (seed or dump)
is ``{"users": [...], "<part>": {...}, ...}`` with one top-level key per part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from msgraph_emulator.changes import ChangeFeed
from msgraph_emulator.graph.auth import SigningKey
from msgraph_emulator.identity.store import IdentityStore
from msgraph_emulator.mailbox.behaviour import Behaviour
from msgraph_emulator.mailbox.mailboxes import Mailboxes
from msgraph_emulator.notify.store import SubscriptionStore
from msgraph_emulator.settings import EmulatorSettings
from msgraph_emulator.users import UserRegistry


@dataclass
class EmulatorState:
    settings: EmulatorSettings
    signing_key: SigningKey = field(default_factory=SigningKey.generate)
    changes: ChangeFeed = field(default_factory=ChangeFeed)
    users: UserRegistry = field(default_factory=UserRegistry)
    mailboxes: Mailboxes = field(default_factory=Mailboxes)
    identity: IdentityStore = field(default_factory=IdentityStore)
    subscriptions: SubscriptionStore = field(default_factory=SubscriptionStore)
    behaviour: Behaviour = field(default_factory=Behaviour)
